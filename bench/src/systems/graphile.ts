import { Logger, makeWorkerUtils, run } from "graphile-worker";
import { quietPool } from "../db.js";
import type { JobArgs } from "../protocol.js";
import type { Producer, ProducerContext, System, WorkerSpec } from "./types.js";

const TASK = "noop";
const quiet = new Logger(() => () => {});

async function openProducer({ databaseUrl, sql }: ProducerContext): Promise<Producer> {
  // A pool of our own, so that its connections carry the parent's application_name.
  const pgPool = quietPool(databaseUrl, 10);
  const utils = await makeWorkerUtils({ pgPool, logger: quiet });
  await utils.migrate();
  // Jobs above this id are the ones under test: counting only those keeps the final
  // count an index range scan even with a million seeded rows.
  let seededUpTo = 0;
  return {
    async batchEnqueue(argsList) {
      await utils.addJobs(argsList.map((payload) => ({ identifier: TASK, payload })));
    },
    async enqueue(args) {
      await utils.addJob(TASK, args);
    },
    async seedFinished(count) {
      // graphile-worker deletes a job when it succeeds; what stays in its table is the
      // jobs that failed for good (attempts = max_attempts), so those stand for history.
      await sql.query(
        "INSERT INTO graphile_worker._private_tasks (identifier) VALUES ($1) ON CONFLICT DO NOTHING",
        [TASK],
      );
      await sql.query(
        `INSERT INTO graphile_worker._private_jobs (task_id, payload, attempts, max_attempts, last_error)
         SELECT t.id, json_build_object('i', g), 25, 25, 'seeded'
         FROM graphile_worker._private_tasks t, generate_series(1, $1::int) AS g
         WHERE t.identifier = $2`,
        [count, TASK],
      );
      const { rows } = await sql.query<{ max: string }>(
        "SELECT max(id) AS max FROM graphile_worker._private_jobs",
      );
      seededUpTo = Number(rows[0]!.max);
      await sql.query("VACUUM ANALYZE graphile_worker._private_jobs");
    },
    async remaining() {
      // Succeeded jobs are deleted, so whatever is left above the seeded rows is not done.
      const { rows } = await sql.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM graphile_worker._private_jobs WHERE id > $1",
        [seededUpTo],
      );
      return rows[0]!.n;
    },
    async close() {
      await utils.release();
      await pgPool.end();
    },
  };
}

/**
 * Two documented configurations of graphile-worker 0.17.3:
 * - `graphile`: its defaults (no local queue, no batched completion) with the pool-size
 *   advice of its options' docs ("10 or concurrentJobs + 2, whichever is larger");
 * - `graphile-lq`: its best documented configuration for throughput, the one its
 *   performance page measures (https://worker.graphile.org/docs/performance, "Quick
 *   stats" and "Batching"): `localQueue: { size: 500 }`, `completeJobBatchDelay: 0`,
 *   `failJobBatchDelay: 0`. The page's other setting, `maxPoolSize: 25` for
 *   `concurrentJobs: 24`, is the same pool advice. Left at their defaults, as on that page:
 *   `preparedStatements` (true, the fast path; false only for poolers that lack them),
 *   `useNodeTime` (false; its docs make it about clock skew, not speed), the local queue's
 *   `ttl` and `refetchDelay` (which only matter when the queue runs dry).
 */
function startWorker(batched: boolean) {
  return async ({ databaseUrl, concurrency, onJob }: WorkerSpec) => {
    const runner = await run({
      connectionString: databaseUrl,
      concurrency,
      maxPoolSize: Math.max(10, concurrency + 2),
      noHandleSignals: true,
      logger: quiet,
      taskList: {
        [TASK]: async (payload) => {
          await onJob(payload as JobArgs);
        },
      },
      ...(batched && {
        preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
      }),
    });
    return {
      async stop() {
        await runner.stop();
      },
    };
  };
}

export const graphile: System = { name: "graphile", openProducer, startWorker: startWorker(false) };

export const graphileLocalQueue: System = {
  name: "graphile-lq",
  openProducer,
  startWorker: startWorker(true),
};
