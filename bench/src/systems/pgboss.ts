import PgBoss from "pg-boss";
import type { JobArgs } from "../protocol.js";
import type { Producer, ProducerContext, System, WorkerSpec } from "./types.js";

const QUEUE = "noop";
/** pg-boss refuses anything shorter (its MIN_POLLING_INTERVAL_MS is 500). */
const MIN_POLLING_INTERVAL_SECONDS = 0.5;

export const pgboss: System = {
  name: "pgboss",

  async openProducer({ databaseUrl, sql }: ProducerContext): Promise<Producer> {
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
  },

  /**
   * One work() loop fetching `concurrency` jobs at a time (batchSize) and running them
   * together, at the minimum polling interval. pg-boss 10 has no other concurrency knob
   * (teamSize is gone); its loop sleeps the rest of the interval after every batch.
   */
  async startWorker({ databaseUrl, concurrency, onJob }: WorkerSpec) {
    const boss = new PgBoss({ connectionString: databaseUrl });
    boss.on("error", (error) => console.error("pg-boss worker:", error));
    await boss.start();
    await boss.work<JobArgs>(
      QUEUE,
      { batchSize: concurrency, pollingIntervalSeconds: MIN_POLLING_INTERVAL_SECONDS },
      async (jobs) => {
        await Promise.all(
          jobs.map(async (job) => {
            onJob(job.data);
          }),
        );
      },
    );
    return {
      async stop() {
        await boss.stop({ graceful: true, wait: true, timeout: 5000 });
      },
    };
  },
};
