/**
 * A worker in its own process, for the chaos suites and the soak. Configured by env:
 * DATABASE_URL and CHAOS_WORKER (JSON, see WorkerConfig in harness.ts). Prints
 * "ready <workerId>" once running and reports over IPC when it has a parent.
 */
import { App, consoleLogger, type LogLevel } from "@proc/core";
import { retryStalledJobs } from "@proc/contrib-stalled";
import { PgConnector } from "@proc/pg-connector";
import { periodic, scheduler } from "@proc/scheduler";
import { Worker } from "@proc/worker";
import type { WorkerConfig } from "./harness.js";

const config = JSON.parse(process.env.CHAOS_WORKER ?? "{}") as WorkerConfig & { periodic?: string };
const logger = consoleLogger({ level: (process.env.CHAOS_LOG_LEVEL as LogLevel) ?? "info", format: "json" });
const app = new App({
  connector: new PgConnector({
    connectionString: process.env.DATABASE_URL,
    poolConfig: config.poolMax ? { max: config.poolMax } : {},
    logger,
  }),
  logger,
});
if (config.stalled || config.periodic) app.use(scheduler());
if (config.stalled) app.use(retryStalledJobs(config.stalled));

const send = (message: object) => {
  if (process.send && process.connected) process.send(message, undefined, undefined, () => {});
};

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

// Every execution is recorded before the work: a run cut short by SIGKILL still counts.
app.task({ name: "chaos" }, async ({ ms = 0 }: { ms?: number }, ctx) => {
  if (config.record === "table")
    await app.connector.query("INSERT INTO executions (job_id, pid, attempt) VALUES ($1, $2, $3)", [
      ctx.job.id,
      process.pid,
      ctx.job.attempts,
    ]);
  if (config.record === "ipc") send({ t: "exec", id: ctx.job.id, attempt: ctx.job.attempts });
  await sleep(ms);
  return { pid: process.pid };
});

// Holds one of the pool's connections for the whole run (a slow query).
app.task({ name: "hold" }, async ({ ms }: { ms: number }) => {
  await app.connector.query("SELECT pg_sleep($1)", [ms / 1000]);
  return "held";
});

// Fails its first `failures` runs.
app.task(
  { name: "flaky", retry: { maxAttempts: 5, wait: 100 } },
  async ({ failures }: { failures: number }, ctx) => {
    if (ctx.job.attempts <= failures) throw new Error(`planned failure ${ctx.job.attempts}`);
    return { attempts: ctx.job.attempts };
  },
);

// Sleeps, honouring aborts.
app.task({ name: "sleepy" }, async ({ ms }: { ms: number }, ctx) => {
  await sleep(ms, ctx.signal);
  return "slept";
});

// A run the outage suite can line up against the others of its job: its start and end
// (wall clock, which the parent shares) go over IPC, so a suite can tell whether two runs
// of one job overlapped even when the database could not have recorded it. Honours
// aborts, and says why it was aborted.
let runsStarted = 0;
app.task({ name: "watched" }, async ({ ms }: { ms: number }, ctx) => {
  const run = {
    id: ctx.job.id,
    pid: process.pid,
    n: ++runsStarted,
    attempts: ctx.job.attempts,
    // The claim number: a Job field being added, read loosely until it lands.
    run: (ctx.job as { run?: number }).run ?? null,
  };
  send({ t: "run_start", ...run, at: Date.now() });
  try {
    await sleep(ms, ctx.signal);
  } finally {
    const reason: unknown = ctx.signal.reason;
    send({
      t: "run_end",
      ...run,
      at: Date.now(),
      aborted: ctx.signal.aborted,
      reason: ctx.signal.aborted
        ? reason instanceof Error
          ? `${reason.name}: ${reason.message}`
          : String(reason)
        : null,
    });
  }
  return { pid: process.pid };
});

// The soak's task: reports enqueue→start latency (producer and worker share the clock).
let latencies: number[] = [];
app.task({ name: "soak" }, async ({ t }: { t: number }) => {
  latencies.push(Date.now() - t);
});
setInterval(() => {
  if (latencies.length === 0) return;
  send({ t: "lat", values: latencies });
  latencies = [];
}, 1000).unref();

if (config.periodic) {
  const tick = app.task({ name: "tick" }, async ({ timestamp }: { timestamp: number }) => timestamp);
  periodic(app, { cron: config.periodic }, tick);
}

const worker = new Worker(app, { handleSignals: true, ...config.worker });
worker.on("worker:start", ({ workerId }) => {
  process.stdout.write(`ready ${workerId}\n`);
  send({ t: "ready", workerId, pid: process.pid });
});
await worker.run();
process.stdout.write("stopped\n");
process.disconnect?.();
