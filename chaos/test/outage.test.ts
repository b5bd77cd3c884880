/**
 * Outage chaos: the database becomes unreachable while long jobs run, to every worker
 * (a network cut or a failover) or to one of them (a partition). What must hold is the
 * design's "at most one run of a job at a time": silence shared by everyone is not a
 * stall, and a job recovered from a cut-off worker is fenced (its old run aborted, its
 * late outcome refused). Workers reach Postgres through TCP proxies that the suite cuts;
 * the suite itself keeps a direct connection. Each run's start and end come from the
 * worker over IPC (wall clock), so that overlaps are seen even where the database could
 * not record them.
 */
import { App, type Job, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { describe, expect, it } from "vitest";
import {
  adminUrl,
  type ChaosDatabase,
  type Child,
  createChaosDatabase,
  sleep,
  spawnWorker,
  tail,
  until,
  type WorkerConfig,
} from "../src/harness.js";
import { startTcpProxy, type TcpProxy } from "../src/tcp-proxy.js";

// Scaled down from the defaults (heartbeatSeconds 30, heartbeat every 5 s, a check every
// 10 s) so that a stall is declared within seconds; the ratio (heartbeat ≈ H/6) is kept.
const H = 4;
const WORKER: WorkerConfig = {
  // prefetch 0: a long job claimed ahead of a free slot would sit unstarted.
  worker: { concurrency: 4, heartbeatInterval: 700, pollInterval: 1000, prefetch: 0 },
  stalled: { heartbeatSeconds: H, cron: "* * * * * *" },
};
/** A job's outcome in its history (a retry is the outcome of a run too). */
const OUTCOMES = new Set(["succeeded", "failed", "aborted", "cancelled", "deferred_for_retry"]);

interface RunMessage {
  t: string;
  id: number;
  pid: number;
  n: number;
  attempts: number;
  run: number | null;
  at: number;
  aborted?: boolean;
  reason?: string | null;
}

/** One execution of a job's task, as its worker reported it. */
interface Run {
  id: number;
  pid: number;
  /** The worker process's execution counter. */
  n: number;
  attempts: number;
  run: number | null;
  start: number;
  /** null while its worker has not reported an end: it is still running. */
  end: number | null;
  aborted: boolean | null;
  reason: string | null;
}

function runsOf(children: readonly Child[]): Run[] {
  const runs = new Map<string, Run>();
  for (const child of children)
    for (const m of child.messages as RunMessage[]) {
      const key = `${m.pid}:${m.n}`;
      if (m.t === "run_start")
        runs.set(key, { ...pick(m), start: m.at, end: null, aborted: null, reason: null });
      else if (m.t === "run_end") {
        const run = runs.get(key);
        if (run) Object.assign(run, { end: m.at, aborted: m.aborted ?? null, reason: m.reason ?? null });
      }
    }
  return [...runs.values()];
}

const pick = ({ id, pid, n, attempts, run }: RunMessage) => ({ id, pid, n, attempts, run });

interface Overlap {
  id: number;
  a: Run;
  b: Run;
  /** How long both ran (Infinity: both still running). */
  ms: number;
}

/** Every pair of runs of one job that ran at the same time. */
function overlapsOf(runs: readonly Run[]): Overlap[] {
  const found: Overlap[] = [];
  for (const [i, a] of runs.entries())
    for (const b of runs.slice(i + 1)) {
      if (a.id !== b.id) continue;
      const ms = Math.min(a.end ?? Infinity, b.end ?? Infinity) - Math.max(a.start, b.start);
      if (ms > 0) found.push({ id: a.id, a, b, ms });
    }
  return found;
}

/** Runs of one job that report the same claim number: every claim must be a run of its own. */
function sharedClaims(runs: readonly Run[]): string[] {
  const seen = new Map<string, Run>();
  const found: string[] = [];
  for (const r of runs) {
    if (r.run === null) continue;
    const other = seen.get(`${r.id}:${r.run}`);
    if (other) found.push(`job ${r.id} run ${r.run}: pid ${other.pid}#${other.n} and pid ${r.pid}#${r.n}`);
    seen.set(`${r.id}:${r.run}`, r);
  }
  return found;
}

/** Log lines of `action` in the children's output (workers log one JSON object per line). */
function logLines(children: readonly Child[], action: string): Array<Record<string, unknown>> {
  return children.flatMap((child) =>
    child
      .output()
      .split("\n")
      .filter((line) => line.startsWith("{") && line.includes(`"${action}"`))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.action === action),
  );
}

const outcomesOf = (job: Job) => job.events.filter((e) => OUTCOMES.has(e.type)).map((e) => e.type);
const recoveriesOf = (job: Job) => job.events.filter((e) => e.type === "retried" && e.from === "doing");

/** The runs of each job, in seconds relative to `t0`, for the report. */
function timeline(runs: readonly Run[], t0: number): Record<number, string[]> {
  const s = (ms: number | null) => (ms === null ? "…" : ((ms - t0) / 1000).toFixed(1));
  const byJob: Record<number, string[]> = {};
  for (const r of [...runs].sort((a, b) => a.start - b.start)) {
    byJob[r.id] ??= [];
    byJob[r.id]!.push(
      `pid ${r.pid}#${r.n} attempt ${r.attempts} run ${r.run ?? "-"} [${s(r.start)}, ${s(r.end)}]${r.aborted ? " aborted" : ""}`,
    );
  }
  return byJob;
}

/** A suite's world: a database, a direct app for the suite, workers, proxies. */
async function withWorld(
  label: string,
  body: (world: { db: ChaosDatabase; app: App; proxies: TcpProxy[]; children: Child[] }) => Promise<void>,
) {
  const db = await createChaosDatabase(label);
  const app = new App({ connector: new PgConnector({ connectionString: db.url }), logger: silentLogger });
  const world = { db, app, proxies: [] as TcpProxy[], children: [] as Child[] };
  try {
    await app.open();
    await body(world);
  } finally {
    for (const child of world.children) if (!child.exited) child.proc.kill("SIGKILL");
    await Promise.all(world.children.map((c) => c.exit));
    for (const proxy of world.proxies) await proxy.close();
    await app.close();
    await db.drop();
  }
}

async function jobsOf(app: App, ids: readonly number[]): Promise<Job[]> {
  return Promise.all(ids.map(async (id) => (await app.jobManager.getJob(id))!));
}

/** Waits for every job to reach a final status, then for every run to report its end. */
async function settle(app: App, ids: readonly number[], children: readonly Child[], timeoutMs: number) {
  const finished = await until(
    async () => (await jobsOf(app, ids)).every((j) => j.status !== "todo" && j.status !== "doing"),
    { timeoutMs, intervalMs: 250, what: "every job to finish" },
  ).then(
    () => true,
    () => false,
  );
  // A run whose outcome was refused may still be going: give it time to report its end.
  await until(() => runsOf(children).every((r) => r.end !== null), { timeoutMs: 10_000 }).catch(() => {});
  return finished;
}

describe.skipIf(!adminUrl())("outage chaos (network cuts, pg)", () => {
  it("runs no job twice at a time when the database is unreachable to every worker", async () => {
    const CUT_MS = 2 * H * 1000;
    const JOB_MS = 2.5 * H * 1000 + CUT_MS; // running before, throughout and after the cut
    await withWorld("outage", async ({ db, app, proxies, children }) => {
      const proxy = await startTcpProxy(adminUrl()!);
      proxies.push(proxy);
      for (let i = 0; i < 3; i++) children.push(spawnWorker(proxy.url(db.name), WORKER));
      await Promise.all(children.map((c) => c.waitForOutput("ready", 60_000)));

      const ids = await app
        .configureTask("watched", { allowUnknown: true })
        .batchDefer(Array.from({ length: 6 }, () => ({ ms: JOB_MS })));
      await until(() => new Set(runsOf(children).map((r) => r.id)).size === ids.length, {
        what: "every job to start",
      });

      // The workers have beaten at least once (in production the database heard its
      // first heartbeat long ago): a database that never heard one has no silence to
      // tell apart from death, and judges as it always did.
      await until(
        async () =>
          (
            await app.connector.query<{ at: Date | null }>(
              "SELECT last_heartbeat_at AS at FROM proc.liveness",
            )
          )[0]?.at,
        { what: "a first heartbeat" },
      );
      // A checker that never loses the database: the hand-written recipe (DESIGN §3),
      // run every 250 ms by the suite over its direct connection, as a cron job on
      // another host would. It must not judge the workers on the shared silence either,
      // during the cut or in the moments after it, before they have beaten again.
      let checking = true;
      const checker = (async () => {
        while (checking) {
          for (const job of await app.jobManager.getStalledJobs({ heartbeatSeconds: H }))
            await app.jobManager.retryJob(job);
          await sleep(250);
        }
      })();

      const cutAt = Date.now();
      proxy.cut();
      await sleep(CUT_MS);
      proxy.restore();
      const restoredAt = Date.now();
      const finished = await settle(app, ids, children, 2 * JOB_MS + 30_000);
      checking = false;
      await checker;

      const runs = runsOf(children);
      const jobs = await jobsOf(app, ids);
      const overlaps = overlapsOf(runs);
      const recoveries = jobs.flatMap(recoveriesOf);
      const firstRecovery = Math.min(...recoveries.map((e) => e.at.getTime()));
      const [doing] = await app.connector.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM proc.jobs WHERE task_name = 'watched' AND status = 'doing'",
      );
      console.log(
        `outage chaos (global cut of ${CUT_MS} ms, H = ${H} s): ${JSON.stringify({
          jobs: ids.length,
          finished,
          runs: runs.length,
          jobsRunMoreThanOnce: jobs.filter((j) => runs.filter((r) => r.id === j.id).length > 1).length,
          overlaps: overlaps.length,
          maxOverlapMs: overlaps.length ? Math.max(...overlaps.map((o) => o.ms)) : 0,
          staleOutcomesRefused: logLines(children, "stale_outcome").length,
          stalledRecoveries: recoveries.length,
          retryStalledJobLogLines: logLines(children, "retry_stalled_job").length,
          restoreToFirstRecoveryMs: recoveries.length ? firstRecovery - restoredAt : null,
          statuses: jobs.map((j) => j.status),
          outcomes: Object.fromEntries(jobs.map((j) => [j.id, outcomesOf(j)])),
          timeline: timeline(runs, cutAt),
        })}`,
      );

      expect(finished, "every job finished").toBe(true);
      // Every worker lived through the outage.
      for (const child of children) expect(child.exited, tail(child.output())).toBe(false);
      expect(
        overlaps.map(
          (o) => `job ${o.id}: pid ${o.a.pid}#${o.a.n} and pid ${o.b.pid}#${o.b.n} for ${o.ms} ms`,
        ),
      ).toEqual([]);
      expect(sharedClaims(runs)).toEqual([]);
      // The silence was everyone's: no worker was judged stalled.
      expect(recoveries).toEqual([]);
      for (const job of jobs) {
        expect(job.status, `job ${job.id}`).toBe("succeeded");
        expect(outcomesOf(job), `job ${job.id}`).toEqual(["succeeded"]);
      }
      expect(doing!.n).toBe(0);
    });
  });

  it("fences the run of a cut-off worker whose job was recovered by the others", async () => {
    const JOB_MS = 30_000; // outlives the cut by far: its abort at reconnection is visible
    await withWorld("partition", async ({ db, app, proxies, children }) => {
      const proxy = await startTcpProxy(adminUrl()!);
      proxies.push(proxy);
      const partitioned = { ...WORKER, worker: { ...WORKER.worker, concurrency: 2 } };
      const w1 = spawnWorker(proxy.url(db.name), partitioned);
      children.push(w1);
      await w1.waitForOutput("ready", 60_000);

      // W1 alone takes the first two (its two slots); the third waits for the others.
      const ids = await app
        .configureTask("watched", { allowUnknown: true })
        .batchDefer(Array.from({ length: 3 }, () => ({ ms: JOB_MS })));
      await until(() => runsOf([w1]).length >= 1, { what: "W1 to run a job" });
      const others = [spawnWorker(db.url, partitioned), spawnWorker(db.url, partitioned)];
      children.push(...others);
      await Promise.all(others.map((c) => c.waitForOutput("ready", 60_000)));
      await until(() => new Set(runsOf(children).map((r) => r.id)).size === ids.length, {
        what: "every job to start",
      });

      const oldRuns = runsOf([w1]);
      const cutAt = Date.now();
      proxy.cut();
      // Past H and a few checks, and until the others have run every job W1 held.
      await sleep((H + 3) * 1000);
      const recoveredElsewhere = () =>
        oldRuns.every((old) => runsOf(others).some((r) => r.id === old.id && r.start > cutAt));
      await until(recoveredElsewhere, { timeoutMs: 20_000, what: "W1's jobs to run elsewhere" }).catch(
        () => {},
      );
      const recovered = recoveredElsewhere();
      proxy.restore();
      const restoredAt = Date.now();
      const finished = await settle(app, ids, children, 2 * JOB_MS + 30_000);

      const runs = runsOf(children);
      const jobs = await jobsOf(app, ids);
      const isOld = (r: Run) => r.pid === w1.pid && r.start < cutAt;
      const overlaps = overlapsOf(runs);
      const recoveries = jobs.flatMap(recoveriesOf);
      const old = oldRuns.map((r) => runs.find((x) => x.pid === r.pid && x.n === r.n)!);
      const [doing] = await app.connector.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM proc.jobs WHERE task_name = 'watched' AND status = 'doing'",
      );
      console.log(
        `outage chaos (W1 cut off, H = ${H} s): ${JSON.stringify({
          jobs: ids.length,
          jobsOnW1: old.length,
          finished,
          recoveredBeforeRestore: recovered,
          runs: runs.length,
          overlaps: overlaps.length,
          oldRunOverlapMs: overlaps.filter((o) => isOld(o.a) || isOld(o.b)).map((o) => o.ms),
          otherOverlaps: overlaps.filter((o) => !isOld(o.a) && !isOld(o.b)).length,
          oldRunEndAfterRestoreMs: old.map((r) => (r.end === null ? null : r.end - restoredAt)),
          oldRunAbortReasons: old.map((r) => r.reason),
          staleOutcomesRefusedOnW1: logLines([w1], "stale_outcome").length,
          staleOutcomesRefused: logLines(children, "stale_outcome").length,
          stalledRecoveries: recoveries.length,
          retryStalledJobLogLines: logLines(children, "retry_stalled_job").length,
          cutToFirstRecoveryMs: recoveries.length
            ? Math.min(...recoveries.map((e) => e.at.getTime())) - cutAt
            : null,
          statuses: jobs.map((j) => j.status),
          outcomes: Object.fromEntries(jobs.map((j) => [j.id, outcomesOf(j)])),
          timeline: timeline(runs, cutAt),
        })}`,
      );

      expect(finished, "every job finished").toBe(true);
      expect(recovered, "W1's jobs were recovered and run by another worker while it was cut off").toBe(true);
      for (const child of children) expect(child.exited, tail(child.output())).toBe(false);
      // Only W1's old runs may overlap (W1 could not know while cut off); nothing else.
      expect(overlaps.filter((o) => !isOld(o.a) && !isOld(o.b)).map((o) => `job ${o.id}`)).toEqual([]);
      expect(sharedClaims(runs)).toEqual([]);
      // Once W1 is back, each of its old runs learns that its job was recovered: its signal
      // aborts long before the run would have ended on its own.
      for (const r of old) {
        expect(r.end, `W1's run of job ${r.id} ended`).not.toBeNull();
        expect(r.aborted, `W1's run of job ${r.id} was aborted`).toBe(true);
        expect(r.end! - restoredAt, `W1's run of job ${r.id}: ms from restore to its end`).toBeLessThan(
          2 * H * 1000,
        );
      }
      // One outcome per job, and for W1's jobs the new run's: W1's late one was refused.
      for (const job of jobs) {
        expect(job.status, `job ${job.id}`).toBe("succeeded");
        expect(outcomesOf(job), `job ${job.id}`).toEqual(["succeeded"]);
        expect((job.result as { pid: number }).pid, `job ${job.id} result`).not.toBe(w1.pid);
      }
      // The job W1 never held ran once.
      for (const id of ids.filter((id) => !old.some((r) => r.id === id)))
        expect(runs.filter((r) => r.id === id).length, `job ${id}`).toBe(1);
      expect(doing!.n).toBe(0);
    });
  });
});
