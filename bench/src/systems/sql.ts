import pg from "pg";
import type { JobArgs } from "../protocol.js";
import type { Producer, ProducerContext, System, WorkerSpec } from "./types.js";

/**
 * The floor: what any Postgres queue has to do at least. One table, no history, no
 * retries, no worker registry; claim with FOR UPDATE SKIP LOCKED, run the batch, mark it
 * done by id array. NOTIFY on insert so that an idle worker wakes like the others do.
 */
const SCHEMA = `
  CREATE TABLE bench_jobs (
    id bigserial PRIMARY KEY,
    args jsonb NOT NULL,
    status text NOT NULL DEFAULT 'todo',
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX bench_jobs_todo_idx ON bench_jobs (id) WHERE status = 'todo';
  CREATE INDEX bench_jobs_doing_idx ON bench_jobs (id) WHERE status = 'doing';
`;
const CHANNEL = "bench_jobs";
/** A fallback poll, as every real queue has; NOTIFY does the waking. */
const POLL_MS = 1000;

const INSERT = `
  WITH inserted AS (
    INSERT INTO bench_jobs (args) SELECT a FROM jsonb_array_elements($1::jsonb) AS a RETURNING 1
  )
  SELECT pg_notify('${CHANNEL}', '') FROM (SELECT count(*) FROM inserted) AS n`;

const CLAIM = `
  UPDATE bench_jobs SET status = 'doing'
  WHERE id IN (SELECT id FROM bench_jobs WHERE status = 'todo' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
  RETURNING id, args`;

const DONE = "UPDATE bench_jobs SET status = 'done' WHERE id = ANY ($1::bigint[])";

export const sql: System = {
  name: "sql",

  async openProducer({ sql: pool }: ProducerContext): Promise<Producer> {
    await pool.query(SCHEMA);
    return {
      async batchEnqueue(argsList) {
        await pool.query(INSERT, [JSON.stringify(argsList)]);
      },
      async enqueue(args) {
        await pool.query(INSERT, [JSON.stringify([args])]);
      },
      async seedFinished(count) {
        await pool.query(
          `INSERT INTO bench_jobs (args, status)
           SELECT jsonb_build_object('i', g), 'done' FROM generate_series(1, $1::int) AS g`,
          [count],
        );
        await pool.query("VACUUM ANALYZE bench_jobs");
      },
      async remaining() {
        const { rows } = await pool.query<{ n: number }>(
          `SELECT ((SELECT count(*) FROM bench_jobs WHERE status = 'todo')
                 + (SELECT count(*) FROM bench_jobs WHERE status = 'doing'))::int AS n`,
        );
        return rows[0]!.n;
      },
      async close() {},
    };
  },

  /** One connection to claim and finish, one to LISTEN; batches of `concurrency` jobs. */
  async startWorker({ databaseUrl, concurrency, onJob }: WorkerSpec) {
    const client = new pg.Client({ connectionString: databaseUrl });
    const listener = new pg.Client({ connectionString: databaseUrl });
    await Promise.all([client.connect(), listener.connect()]);
    let wake: (() => void) | null = null;
    // Set by a NOTIFY that lands while a claim is in flight (its snapshot may predate
    // the job): claim again instead of sleeping until the next poll.
    let notified = false;
    listener.on("notification", () => {
      notified = true;
      wake?.();
    });
    await listener.query(`LISTEN ${CHANNEL}`);
    let stopping = false;
    const loop = (async () => {
      while (!stopping) {
        notified = false;
        const { rows } = await client.query<{ id: string; args: JobArgs }>(CLAIM, [concurrency]);
        if (rows.length === 0) {
          if (!notified)
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, POLL_MS);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
          wake = null;
          continue;
        }
        await Promise.all(
          rows.map(async (row) => {
            onJob(row.args);
          }),
        );
        await client.query(DONE, [rows.map((r) => r.id)]);
      }
    })();
    return {
      async stop() {
        stopping = true;
        wake?.();
        await loop;
        await Promise.all([client.end(), listener.end()]);
      },
    };
  },
};
