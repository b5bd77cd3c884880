import pg from "pg";
import type { JobArgs } from "../protocol.js";
import type { Producer, ProducerContext, System, WorkerSpec } from "./types.js";

/**
 * The floor: what any Postgres queue has to do at least, with none of the features
 * (history, retries, locks, worker registry, stalled-job recovery). One table; claim
 * with FOR UPDATE SKIP LOCKED, mark done by id array. NOTIFY on insert so that an idle
 * worker wakes like the others do.
 */
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS bench_jobs (
    id bigserial PRIMARY KEY,
    args jsonb NOT NULL,
    status text NOT NULL DEFAULT 'todo',
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX IF NOT EXISTS bench_jobs_todo_idx ON bench_jobs (id) WHERE status = 'todo';
  CREATE INDEX IF NOT EXISTS bench_jobs_doing_idx ON bench_jobs (id) WHERE status = 'doing';
  -- enable_sort off, as proc's fetch function sets it: jobs just queued are not analysed yet
  -- (and autovacuum may be off), so the planner guesses a few hundred todo rows and would
  -- rather read and sort all of them than walk the todo index in id order and stop at the
  -- limit. As a plain statement, with 100,000 jobs queued, every claim read the whole queue
  -- (measured: the pipelined floor drained 7,000 jobs/s where proc drained 15,000). A
  -- function, so that the setting holds through PgBouncer in transaction mode too.
  CREATE OR REPLACE FUNCTION bench_claim(p_limit integer) RETURNS TABLE (id bigint, args jsonb)
  LANGUAGE sql SET enable_sort = off AS $$
    UPDATE bench_jobs j SET status = 'doing'
    WHERE j.id = ANY (ARRAY(SELECT t.id FROM bench_jobs t WHERE t.status = 'todo'
                            ORDER BY t.id LIMIT p_limit FOR UPDATE SKIP LOCKED))
    RETURNING j.id, j.args
  $$;
`;
const CHANNEL = "bench_jobs";
/** A fallback poll, as every real queue has; NOTIFY does the waking. */
const POLL_MS = 1000;

/**
 * One INSERT ... SELECT over the args as a text[] (each element one JSON document, cast
 * to jsonb by the server). Measured against `jsonb_array_elements($1::jsonb)` (one JSON
 * array) and `unnest($1::jsonb[])`: the jsonb[] literal is escaped twice over and ran at
 * about 45,000 jobs/s where the other two ran at 100,000-150,000 (batches of 1,000, 2 cores).
 */
const INSERT = `
  WITH inserted AS (
    INSERT INTO bench_jobs (args) SELECT a::jsonb FROM unnest($1::text[]) AS a RETURNING 1
  )
  SELECT pg_notify('${CHANNEL}', '') FROM (SELECT count(*) FROM inserted) AS n`;

/** Claim up to $1 jobs in id order (see bench_claim). */
const CLAIM = "SELECT id, args FROM bench_claim($1)";

const DONE = "UPDATE bench_jobs SET status = 'done' WHERE id = ANY ($1::bigint[])";

async function openProducer({ sql: pool }: ProducerContext): Promise<Producer> {
  await pool.query(SCHEMA);
  const insert = (argsList: JobArgs[]) => pool.query(INSERT, [argsList.map((args) => JSON.stringify(args))]);
  return {
    async batchEnqueue(argsList) {
      await insert(argsList);
    },
    async enqueue(args) {
      await insert([args]);
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
}

/** A NOTIFY-or-poll wait that a claim in flight cannot miss (see `notified`). */
class Waker {
  #wake: (() => void) | null = null;
  /** Set by a NOTIFY that lands while a claim runs (its snapshot may predate the job). */
  notified = false;

  wake(): void {
    this.notified = true;
    this.#wake?.();
  }

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.#wake = null;
        resolve();
      }
      this.#wake = done;
    });
  }
}

async function connect(databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  return client;
}

/** Jobs claimed per round trip by the pipelined floor. */
const CLAIM_BATCH = 500;

/**
 * The pipelined floor (`sql`): what the hardware allows for claim + complete.
 * - Claims CLAIM_BATCH jobs per round trip ahead of the handlers, into a buffer of one to
 *   two batches: a claim is sent as soon as the buffer is down to one batch, so the
 *   handlers never wait for the database while jobs are queued.
 * - Completes by id array on a second connection, one statement in flight at a time,
 *   carrying every id finished meanwhile: completion runs side by side with the next claim.
 * - LISTENs on the claim connection (no third connection); with `listen: false`
 *   (PgBouncer in transaction mode) it polls.
 */
async function startPipelined({ databaseUrl, concurrency, listen, onJob }: WorkerSpec) {
  const [claimer, completer] = await Promise.all([connect(databaseUrl), connect(databaseUrl)]);
  const waker = new Waker();
  if (listen) {
    claimer.on("notification", () => waker.wake());
    await claimer.query(`LISTEN ${CHANNEL}`);
  }
  let stopping = false;
  // The buffer is a queue read from `head`, compacted when a claim appends.
  let buffer: Array<{ id: string; args: JobArgs }> = [];
  let head = 0;
  const buffered = () => buffer.length - head;
  // Slots waiting for a job, and the claim loop waiting for the buffer to run low.
  const idleSlots: Array<() => void> = [];
  let onLow: (() => void) | null = null;

  let done: string[] = [];
  let completing: Promise<void> | null = null;
  const complete = () => {
    if (completing || done.length === 0) return;
    const ids = done;
    done = [];
    completing = completer.query(DONE, [ids]).then(() => {
      completing = null;
      complete();
    });
  };

  const claimLoop = (async () => {
    while (!stopping) {
      if (buffered() > CLAIM_BATCH) {
        await new Promise<void>((resolve) => {
          onLow = resolve;
        });
        onLow = null;
        continue;
      }
      waker.notified = false;
      const { rows } = await claimer.query<{ id: string; args: JobArgs }>(CLAIM, [CLAIM_BATCH]);
      buffer = buffer.slice(head).concat(rows);
      head = 0;
      for (let i = 0; i < rows.length && idleSlots.length; i++) idleSlots.shift()!();
      if (rows.length < CLAIM_BATCH && !waker.notified && !stopping) await waker.wait(POLL_MS);
    }
  })();

  const slot = async () => {
    while (!stopping) {
      if (head === buffer.length) {
        await new Promise<void>((resolve) => idleSlots.push(resolve));
        continue;
      }
      const job = buffer[head++]!;
      if (buffered() <= CLAIM_BATCH) onLow?.();
      await onJob(job.args);
      done.push(job.id);
      complete();
    }
  };
  const slots = Array.from({ length: concurrency }, slot);

  return {
    async stop() {
      stopping = true;
      waker.wake();
      onLow?.();
      for (const wake of idleSlots.splice(0)) wake();
      await Promise.all([claimLoop, ...slots]);
      while (completing) await completing;
      await Promise.all([claimer.end(), completer.end()]);
    },
  };
}

/**
 * The simple queue (`sql-simple`), the floor of earlier versions of this benchmark, kept
 * as a labelled reference: one connection claims `concurrency` jobs, runs them, marks them
 * done, and only then claims again; a second one LISTENs. It shows what a queue without
 * prefetching or pipelining does, not what the hardware allows.
 */
async function startSimple({ databaseUrl, concurrency, onJob }: WorkerSpec) {
  const [client, listener] = await Promise.all([connect(databaseUrl), connect(databaseUrl)]);
  const waker = new Waker();
  listener.on("notification", () => waker.wake());
  await listener.query(`LISTEN ${CHANNEL}`);
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      waker.notified = false;
      const { rows } = await client.query<{ id: string; args: JobArgs }>(CLAIM, [concurrency]);
      if (rows.length === 0) {
        if (!waker.notified) await waker.wait(POLL_MS);
        continue;
      }
      await Promise.all(rows.map((row) => onJob(row.args)));
      await client.query(DONE, [rows.map((r) => r.id)]);
    }
  })();
  return {
    async stop() {
      stopping = true;
      waker.wake();
      await loop;
      await Promise.all([client.end(), listener.end()]);
    },
  };
}

export const sql: System = {
  name: "sql",
  openProducer,
  startWorker: startPipelined,
  transactionPooling: true,
};
export const sqlSimple: System = { name: "sql-simple", openProducer, startWorker: startSimple };
