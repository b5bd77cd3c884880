import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { Worker, type WorkerOptions } from "@proc/worker";
import { quietPool } from "../db.js";
import type { JobArgs } from "../protocol.js";
import type { Producer, ProducerContext, System, WorkerSpec } from "./types.js";

const TASK = "noop";

/** An app with the benchmark's one task; quiet, as every system here is. */
function makeApp(connector: PgConnector, onJob: (args: JobArgs) => void = () => {}) {
  const app = new App({ connector, logger: silentLogger });
  const task = app.task<JobArgs>({ name: TASK }, (args) => {
    onJob(args);
  });
  return { app, task };
}

export const proc: System = {
  name: "proc",

  async openProducer({ databaseUrl, sql }: ProducerContext): Promise<Producer> {
    // The parent's pool is its own (PgConnector's `pool` option): PgConnector.close()
    // stops listening for pool errors once pool.end() resolves, but pg resolves that
    // before the sockets are closed, and the DROP DATABASE ... WITH (FORCE) right after
    // then crashes the process with an unhandled 'error' event.
    const pool = quietPool(databaseUrl, 10);
    const { app, task } = makeApp(new PgConnector({ pool }));
    await app.open();
    await app.migrate();
    return {
      async batchEnqueue(argsList) {
        await task.batchDefer(argsList);
      },
      async enqueue(args) {
        await task.defer(args);
      },
      async seedFinished(count) {
        await sql.query(
          `INSERT INTO proc.jobs (queue_name, task_name, args, status, attempts, events, created_at, started_at, finished_at)
           SELECT 'default', $2, jsonb_build_object('i', g), 'succeeded', 1, '[]', now(), now(), now()
           FROM generate_series(1, $1::int) AS g`,
          [count, TASK],
        );
        await sql.query("VACUUM ANALYZE proc.jobs");
      },
      async remaining() {
        // Two counts so that each is answered by a partial index (todo, doing).
        const { rows } = await sql.query<{ n: number }>(
          `SELECT ((SELECT count(*) FROM proc.jobs WHERE status = 'todo')
                 + (SELECT count(*) FROM proc.jobs WHERE status = 'doing'))::int AS n`,
        );
        return rows[0]!.n;
      },
      async close() {
        await app.close();
        await pool.end();
      },
    };
  },

  startWorker: startWorker({}),
};

/**
 * proc with `deleteJobs: "successful"`: a succeeded job is deleted instead of kept with
 * its history, as graphile-worker always does. Shows what keeping history costs.
 */
export const procDelete: System = {
  ...proc,
  name: "proc-delete",
  startWorker: startWorker({ deleteJobs: "successful" }),
};

function startWorker(options: Pick<WorkerOptions, "deleteJobs">): System["startWorker"] {
  return async ({ databaseUrl, concurrency, oneShot, onJob }: WorkerSpec) => {
    const { app } = makeApp(new PgConnector({ connectionString: databaseUrl }), onJob);
    // No signal handlers: the child is stopped over IPC. A drain runs one-shot
    // (wait: false), the documented way to empty a queue; fetchBatchSize and prefetch
    // stay at their defaults.
    const worker = new Worker(app, { ...options, concurrency, handleSignals: false, wait: !oneShot });
    const started = new Promise<void>((resolve) => worker.once("worker:start", () => resolve()));
    const running = worker.run();
    await Promise.race([started, running]);
    return {
      async stop() {
        await worker.stop();
        await running;
      },
    };
  };
}
