/**
 * What every scenario shares: the shape of a scenario and of its measures, a producer on
 * a fresh database, enqueueing, and the end of a drain as the database sees it.
 */
import type { Sizes, SystemName } from "./config.js";
import { type Admin, PARENT_APP_NAME, quietPool } from "./db.js";
import type { PgBouncer } from "./pgbouncer.js";
import { type JobArgs, now } from "./protocol.js";
import { sleep } from "./stats.js";
import { type Producer, loadSystem } from "./systems/index.js";

/** One number a run produced, named by the table row it belongs to. */
export interface Measure {
  label: string;
  unit: string;
  better: "higher" | "lower";
  value: number;
  /** The drain hit its time limit: the rate is over the jobs done by then. */
  partial?: boolean;
}

/** One scenario run of one system on its own fresh database. */
export interface Scenario {
  id: string;
  /** Skip worker-only variants (they enqueue exactly like their base system). */
  needsWorker: boolean;
  /** Only these systems can run it (the others are skipped); absent: every system. */
  systems?: readonly SystemName[];
  run(env: Env, system: SystemName, database: string): Promise<Measure[]>;
}

export interface Env {
  admin: Admin;
  sizes: Sizes;
  /** A PgBouncer in transaction mode, started on first use; null when it is not installed. */
  pgbouncer(): Promise<PgBouncer | null>;
}

/** How often the end of a drain is checked, in ms (the count itself is an index scan). */
export const DRAIN_POLL_MS = 5;

export async function withProducer<T>(
  env: Env,
  system: SystemName,
  database: string,
  fn: (producer: Producer) => Promise<T>,
): Promise<T> {
  const databaseUrl = env.admin.url(database, PARENT_APP_NAME);
  const sql = quietPool(databaseUrl, 2);
  const producer = await (await loadSystem(system)).openProducer({ databaseUrl, sql });
  try {
    return await fn(producer);
  } finally {
    await producer.close();
    await sql.end();
  }
}

/** Job args in batches; `extra` is merged into every job's args (a padding string). */
export function argsBatches(count: number, batchSize: number, extra: Partial<JobArgs> = {}): JobArgs[][] {
  const batches: JobArgs[][] = [];
  for (let start = 0; start < count; start += batchSize)
    batches.push(
      Array.from({ length: Math.min(batchSize, count - start) }, (_, k) => ({ ...extra, i: start + k })),
    );
  return batches;
}

export async function enqueueAll(
  producer: Producer,
  count: number,
  batchSize: number,
  extra: Partial<JobArgs> = {},
): Promise<void> {
  for (const batch of argsBatches(count, batchSize, extra)) await producer.batchEnqueue(batch);
}

/**
 * Count unfinished jobs every DRAIN_POLL_MS until none is left or `deadline` passes.
 * Resolves with when the last count was taken and what it found: a count's snapshot is
 * taken after `polledAt`, so zero means every job finished by then (give or take a round
 * trip). Called only once the handlers have seen every job, so that counting does not
 * load the database mid-drain.
 */
export async function waitUntilFinished(
  producer: Producer,
  deadline: number,
): Promise<{ polledAt: number; left: number }> {
  for (;;) {
    const polledAt = now();
    const left = await producer.remaining();
    if (left === 0 || polledAt >= deadline) return { polledAt, left };
    await sleep(DRAIN_POLL_MS);
  }
}

/** Resolves when `done()` turns true (checked every DRAIN_POLL_MS) or at `deadline`. */
export async function until(done: () => boolean, deadline: number): Promise<void> {
  while (!done() && now() < deadline) await sleep(DRAIN_POLL_MS);
}
