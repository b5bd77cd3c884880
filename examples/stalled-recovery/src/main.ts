// Kill a worker with SIGKILL in the middle of a job and watch the job run again on
// another worker, with retryStalledJobs() at its defaults. See README.md.
import type { Job } from "@proc/core";
import {
  type WorkerProcess,
  killAllWorkers,
  spawnWorker,
  ExampleRun,
  createDatabase,
  databaseUrlOrSkip,
  log,
  rel,
  sleep,
  waitFor,
} from "@proc/example-support";

const WORKER_SCRIPT = new URL("./worker.ts", import.meta.url);

/** retryStalledJobs() defaults: a look every 10 s + a worker is dead after 30 s without heartbeat. */
const CRON_PERIOD_S = 10;
const HEARTBEAT_SECONDS = 30;
/** The check: the job must have succeeded on the other worker within this long after the kill. */
const SUCCESS_BOUND_MS = 45_000;
const JOB_SECONDS = 4;

const adminUrl = databaseUrlOrSkip();
log("stalled-recovery: two workers, one SIGKILLed mid-job, retryStalledJobs() at its defaults");
const db = await createDatabase(adminUrl, "stalled_recovery");
log(`created database ${db.name}`);
const runner = new ExampleRun("stalled-recovery", db, killAllWorkers);

// The app module reads DATABASE_URL, like the workers' copy of it does.
process.env.DATABASE_URL = db.url;
const { app, slowJob } = await import("./app.js");
const { checks } = runner;

try {
  await app.open();
  await app.migrate();
  log("migrated (app.migrate())");
  await run();
} catch (error) {
  runner.fail(error);
} finally {
  killAllWorkers();
  await app.close().catch(() => {});
  await runner.dropDatabase();
}
runner.exit();

async function run(): Promise<void> {
  const workers = [
    spawnWorker("W1", WORKER_SCRIPT, { DATABASE_URL: db.url }),
    spawnWorker("W2", WORKER_SCRIPT, { DATABASE_URL: db.url }),
  ];
  log(`spawned workers W1 (pid ${workers[0]!.pid}) and W2 (pid ${workers[1]!.pid}), concurrency 2 each`);
  const rows = await waitFor(
    "both workers to register",
    async () => {
      const rows = await app.jobManager.listWorkers();
      return workers.every((w) => rows.some((r) => r.pid === w.pid)) && rows;
    },
    { timeoutMs: 30_000 },
  );
  const byWorkerId = new Map<number, WorkerProcess>();
  for (const row of rows) {
    const w = workers.find((w) => w.pid === row.pid);
    if (w) byWorkerId.set(row.id, w);
  }
  const label = (workerId: unknown) =>
    byWorkerId.get(Number(workerId))?.label ?? `worker ${String(workerId)}`;
  log(`both workers registered: ${rows.map((r) => `${label(r.id)} = worker id ${r.id}`).join(", ")}`);

  const jobId = await slowJob.defer({ seconds: JOB_SECONDS });
  log(`deferred slow_job (${JOB_SECONDS} s) → job ${jobId}`);

  const first = await waitFor(
    "the job to start",
    async () => {
      const job = await app.jobManager.getJob(jobId);
      return job?.status === "doing" && job;
    },
    { timeoutMs: 15_000, intervalMs: 50 },
  );
  const a = byWorkerId.get(first.workerId!);
  const b = workers.find((w) => w !== a);
  if (!a || !b) throw new Error(`job ${jobId} is doing on an unknown worker ${first.workerId}`);
  log(`job ${jobId} is doing on ${a.label} (pid ${a.pid}): call it worker A; ${b.label} (pid ${b.pid}) is B`);

  await sleep(1000);
  const killedAt = Date.now();
  a.child.kill("SIGKILL");
  log(`SIGKILL → A (pid ${a.pid}), one second into the job`);
  const aExit = await a.exited;
  log(`A exited (signal ${aExit.signal}); job ${jobId} is still "doing" on a worker that no longer exists`);
  log(
    `retryStalledJobs() will see it once A's last heartbeat is ${HEARTBEAT_SECONDS} s old, at its next ` +
      `look (every ${CRON_PERIOD_S} s), run by B`,
  );

  let job: Job | null = first;
  let reportedRetry = false;
  let reportedRestart = false;
  let nextProgress = Date.now() + 5000;
  const deadline = killedAt + SUCCESS_BOUND_MS;
  while (Date.now() <= deadline) {
    job = await app.jobManager.getJob(jobId);
    if (!job) throw new Error(`job ${jobId} disappeared`);
    const retried = job.events.find((e) => e.type === "retried");
    if (!reportedRetry && (job.stalledCount > 0 || retried)) {
      reportedRetry = true;
      log(
        `detected stalled: job ${jobId} retried at ${retried ? rel(retried.at) : "?"} ` +
          `(stalledCount ${job.stalledCount}, from "${String(retried?.from)}" on ${label(retried?.worker_id)})`,
      );
    }
    const restart = job.events.filter((e) => e.type === "started")[1];
    if (!reportedRestart && restart) {
      reportedRestart = true;
      log(
        `job ${jobId} started again at ${rel(restart.at)} on ${label(restart.worker_id)}: ` +
          `${((restart.at.getTime() - killedAt) / 1000).toFixed(1)} s after the SIGKILL`,
      );
    }
    if (job.status !== "todo" && job.status !== "doing") break;
    if (!reportedRetry && Date.now() >= nextProgress) {
      nextProgress += 5000;
      const rowA = (await app.jobManager.listWorkers()).find((r) => r.pid === a.pid);
      if (rowA)
        log(
          `waiting: A's last heartbeat is ${((Date.now() - rowA.lastHeartbeatAt.getTime()) / 1000).toFixed(1)} s old ` +
            `(dead after ${HEARTBEAT_SECONDS} s)`,
        );
    }
    await sleep(200);
  }
  if (!job) throw new Error(`job ${jobId} not found`);
  log(`job ${jobId} is ${job.status}${job.result ? ` with result ${JSON.stringify(job.result)}` : ""}`);

  console.log("\njob history (job.events):");
  for (const e of job.events) {
    const where =
      e.worker_id == null
        ? ""
        : e.type === "retried"
          ? ` (was ${String(e.from)} on ${label(e.worker_id)}, stalled)`
          : ` on ${label(e.worker_id)}`;
    console.log(`  ${rel(e.at)}  ${e.type}${where}`);
  }
  const restart = job.events.filter((e) => e.type === "started")[1];
  const runningAgainS = restart ? (restart.at.getTime() - killedAt) / 1000 : Number.NaN;
  const succeededS = job.finishedAt ? (job.finishedAt.getTime() - killedAt) / 1000 : Number.NaN;
  console.log(
    `\nSIGKILL → running again on B: ${runningAgainS.toFixed(1)} s ` +
      `(expected ${HEARTBEAT_SECONDS - 5}–${HEARTBEAT_SECONDS + CRON_PERIOD_S} s)`,
  );
  console.log(
    `SIGKILL → succeeded on B:     ${succeededS.toFixed(1)} s (bound ${SUCCESS_BOUND_MS / 1000} s)\n`,
  );

  const result = job.result as { pid?: number } | null;
  checks.check(job.status === "succeeded", `job ${jobId} succeeded (status ${job.status})`);
  checks.check(
    succeededS <= SUCCESS_BOUND_MS / 1000,
    `it succeeded within ${SUCCESS_BOUND_MS / 1000} s of the SIGKILL (${succeededS.toFixed(1)} s)`,
  );
  checks.check(
    result?.pid === b.pid,
    `worker B ran it to the end (result.pid ${result?.pid}, B is ${b.pid})`,
  );
  checks.check(
    job.stalledCount === 1 && job.attempts === 2,
    `recovered once: stalledCount ${job.stalledCount}, attempts ${job.attempts} (expected 1 and 2)`,
  );

  b.child.kill("SIGTERM");
  log(`SIGTERM → B (pid ${b.pid}): graceful stop`);
  const bExit = await Promise.race([b.exited, sleep(40_000).then(() => null)]);
  checks.check(
    bExit?.code === 0,
    bExit
      ? `B exited with code ${bExit.code}${bExit.signal ? ` (signal ${bExit.signal})` : ""}`
      : "B did not exit",
  );
}
