import { App, consoleLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { type PeriodicArgs, scheduler } from "@proc/scheduler";

// The app module that the example's three workers (src/worker.ts) and main process share.
export const app = new App({
  connector: new PgConnector({ connectionString: process.env.DATABASE_URL }),
  logger: consoleLogger({ level: "warn" }), // warnings and errors only: a readable timeline
}).use(scheduler());

/** Where the task writes down each tick it ran (no unique constraint: a duplicate would show). */
export const CREATE_TICKS_TABLE = `
  CREATE TABLE IF NOT EXISTS ticks (
    tick bigint NOT NULL,          -- the tick's timestamp arg (Unix seconds)
    job_id bigint NOT NULL,
    pid integer NOT NULL,          -- the worker process that ran it
    ran_at timestamptz NOT NULL DEFAULT clock_timestamp()
  )`;

export const recordTick = app.task({ name: "record_tick" }, async ({ timestamp }: PeriodicArgs, ctx) => {
  await ctx.app.connector.query("INSERT INTO ticks (tick, job_id, pid) VALUES ($1, $2, $3)", [
    timestamp,
    ctx.job.id,
    process.pid,
  ]);
  return { tick: timestamp, pid: process.pid };
});

// 6 fields, seconds first: every 2 seconds. Every worker runs the scheduler; the
// database defers exactly one job per tick however many of them there are.
app.periodic({ cron: "*/2 * * * * *" }, recordTick);
