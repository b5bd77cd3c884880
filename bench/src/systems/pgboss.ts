import PgBoss from "pg-boss";
import type { JobArgs } from "../protocol.js";
import type { Producer, ProducerContext, System, WorkerSpec } from "./types.js";

const QUEUE = "noop";
/** pg-boss refuses anything shorter (its MIN_POLLING_INTERVAL_MS is 500). */
const MIN_POLLING_INTERVAL_SECONDS = 0.5;

async function openProducer({ databaseUrl, sql }: ProducerContext): Promise<Producer> {
  // A send-only instance: pg-boss documents supervise/schedule false for processes that
  // only enqueue, leaving maintenance to the worker's instance.
  const boss = new PgBoss({ connectionString: databaseUrl, supervise: false, schedule: false });
  let closed = false;
  // After stop(), pg-boss's pool may still be closing when the database is dropped.
  boss.on("error", (error) => closed || console.error("pg-boss producer:", error));
  await boss.start(); // runs pg-boss's migrations
  await boss.createQueue(QUEUE);
  return {
    async batchEnqueue(argsList) {
      await boss.insert(argsList.map((data) => ({ name: QUEUE, data })));
    },
    async enqueue(args) {
      await boss.send(QUEUE, args);
    },
    async seedFinished(count) {
      // pg-boss keeps completed jobs in its job table until maintenance archives them
      // (12 hours by default).
      await sql.query(
        `INSERT INTO pgboss.job (name, data, state, policy, started_on, completed_on)
           SELECT $2, jsonb_build_object('i', g), 'completed', 'standard', now(), now()
           FROM generate_series(1, $1::int) AS g`,
        [count, QUEUE],
      );
      await sql.query("VACUUM ANALYZE pgboss.job");
    },
    async remaining() {
      const { rows } = await sql.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state < 'completed'",
        [QUEUE],
      );
      return rows[0]!.n;
    },
    async close() {
      closed = true;
      await boss.stop({ graceful: false, wait: true });
    },
  };
}

/**
 * How pg-boss 10 runs jobs:
 * - `pgboss`, its best documented configuration. Concurrency is several `work()` calls
 *   ("Each call to work() will add a new worker", https://github.com/timgit/pg-boss/blob/10.4.2/docs/api/workers.md),
 *   one per slot, each fetching `batchSize` jobs and running them one after another (one
 *   job at a time per slot, so that `concurrency` means what it means for the others), at
 *   the minimum `pollingIntervalSeconds` (0.5, "must be >=0.5"). A worker's loop sleeps the
 *   rest of the interval after every batch unless told not to: `notifyWorker(id)`
 *   ("Notifies a worker by id to bypass the job polling interval ... for this iteration in
 *   the loop", same page) is called after a full batch, when more jobs are likely waiting.
 *   batchSize is max(100, ⌈500 / concurrency⌉): at least 100 per slot, and at least 500
 *   jobs in hand per process, as graphile-lq's local queue holds.
 * - `pgboss-poll`: the same without notifyWorker: each slot takes at most one batch per
 *   0.5 s (concurrency × batchSize × 2 jobs/s at best).
 * - `pgboss-naive`: the configuration of earlier versions of this benchmark, kept as a
 *   labelled reference: one `work()` loop with `batchSize = concurrency` running its batch
 *   with Promise.all, so at most `concurrency` jobs per 0.5 s.
 */
type Mode = "best" | "poll" | "naive";

function perSlotBatch(concurrency: number): number {
  return Math.max(100, Math.ceil(500 / concurrency));
}

function startWorker(mode: Mode): System["startWorker"] {
  return async ({ databaseUrl, concurrency, onJob }: WorkerSpec) => {
    const boss = new PgBoss({ connectionString: databaseUrl });
    boss.on("error", (error) => console.error("pg-boss worker:", error));
    await boss.start();
    if (mode === "naive") {
      await boss.work<JobArgs>(
        QUEUE,
        { batchSize: concurrency, pollingIntervalSeconds: MIN_POLLING_INTERVAL_SECONDS },
        async (jobs) => {
          await Promise.all(jobs.map((job) => onJob(job.data)));
        },
      );
    } else {
      const batchSize = perSlotBatch(concurrency);
      for (let slot = 0; slot < concurrency; slot++) {
        // work() resolves with the id before its first fetch returns, so the handler has it.
        let id: string | undefined;
        id = await boss.work<JobArgs>(
          QUEUE,
          { batchSize, pollingIntervalSeconds: MIN_POLLING_INTERVAL_SECONDS },
          async (jobs) => {
            for (const job of jobs) await onJob(job.data);
            if (mode === "best" && jobs.length === batchSize && id) boss.notifyWorker(id);
          },
        );
      }
    }
    return {
      async stop() {
        await boss.stop({ graceful: true, wait: true, timeout: 5000 });
      },
    };
  };
}

export const pgboss: System = { name: "pgboss", openProducer, startWorker: startWorker("best") };
export const pgbossPoll: System = { name: "pgboss-poll", openProducer, startWorker: startWorker("poll") };
export const pgbossNaive: System = { name: "pgboss-naive", openProducer, startWorker: startWorker("naive") };
