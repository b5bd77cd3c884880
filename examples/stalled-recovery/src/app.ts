import { setTimeout as sleep } from "node:timers/promises";
import { retryStalledJobs } from "@proc/contrib-stalled";
import { App, consoleLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { scheduler } from "@proc/scheduler";

// The app module that the example's workers (src/worker.ts) and main process share.
// Everything is at its defaults: retryStalledJobs() looks for stalled jobs every 10 s
// and calls a worker dead once its last heartbeat is 30 s old; workers heartbeat every 5 s.
export const app = new App({
  connector: new PgConnector({ connectionString: process.env.DATABASE_URL }),
  // Warnings and errors only, to keep the timeline readable; "retry_stalled_job" is a warning.
  logger: consoleLogger({ level: "warn" }),
})
  .use(scheduler())
  .use(retryStalledJobs());

/** A job that takes a while, long enough to kill its worker in the middle of it. */
export const slowJob = app.task({ name: "slow_job" }, async ({ seconds }: { seconds: number }, ctx) => {
  console.log(`slow_job ${ctx.job.id}: started in pid ${process.pid} (attempt ${ctx.job.attempts})`);
  await sleep(seconds * 1000, undefined, { signal: ctx.signal });
  console.log(`slow_job ${ctx.job.id}: done in pid ${process.pid}`);
  // Stored as the job's result: which worker process ran it to the end.
  return { pid: process.pid, worker: ctx.workerName, attempt: ctx.job.attempts };
});
