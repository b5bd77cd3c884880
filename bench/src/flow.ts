/**
 * Flow control (`flow`, proc only): what proc's limits cost a drain, measured against the
 * plain drain in the same repetition, back to back on fresh tables. 20,000 jobs (no-op, then
 * 5 ms each) at
 * c=50: plain; spread over 100 concurrency keys with a limit of 2 each (200 slots > 50, so
 * the limits bind only where one key's jobs bunch up); and with a queue rate limit above
 * the drain rate (100,000 starts per second: every claim reads and writes the window, no
 * job waits). It also checks the keys' limit in the database's own times (claim to
 * completion: no instant with more than 2 running jobs of a key) and reports how evenly
 * the keys progressed (the longest wait of each key). See ../README.md, scenario 12.
 */
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import type pg from "pg";
import type { SystemName } from "./config.js";
import { PARENT_APP_NAME, quietPool } from "./db.js";
import { DRAIN_POLL_MS, type Measure, type Scenario, argsBatches } from "./harness.js";
import { now } from "./protocol.js";
import { sleep } from "./stats.js";
import { WorkerProcess } from "./worker-process.js";

const KEYS = 100;
const LIMIT = 2;
const CONCURRENCY = 50;
const RATE = { max: 100_000, per: 1000 };

type Variant = "plain" | "keys" | "rate";

/** Drain every queued job with a worker child; jobs per second from its start call. */
async function drainAll(
  sql: pg.Pool,
  databaseUrl: string,
  system: SystemName,
  jobs: number,
  jobMs: number,
): Promise<number> {
  const worker = await WorkerProcess.start({
    system,
    databaseUrl,
    concurrency: CONCURRENCY,
    mode: "drain",
    expectedJobs: jobs,
    jobMs,
  });
  try {
    const start = await worker.starting;
    await worker.handledAll;
    for (;;) {
      const { rows } = await sql.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM proc.jobs WHERE status IN ('todo', 'doing')",
      );
      if (rows[0]!.n === 0) break;
      await sleep(DRAIN_POLL_MS);
    }
    const rate = jobs / ((now() - start) / 1000);
    await worker.stop();
    return rate;
  } catch (error) {
    worker.kill();
    throw error;
  }
}

export const flowScenario: Scenario = {
  id: "flow",
  needsWorker: true,
  systems: ["proc"],
  async run(env, system, database) {
    const jobs = env.sizes.drainJobs;
    const databaseUrl = env.admin.url(database, PARENT_APP_NAME);
    const sql = quietPool(databaseUrl, 4);
    const app = new App({ connector: new PgConnector({ pool: sql }), logger: silentLogger });
    try {
      await app.open();
      await app.migrate();
      const measures: Measure[] = [];
      // No-op jobs show the claim's own cost; 5 ms jobs, what a workload with real work sees
      // (a limited job is claimed only for an idle slot, never prefetched, so no-op jobs are
      // bound by claim round trips).
      for (const jobMs of [0, 5]) {
        const rates: Partial<Record<Variant, number>> = {};
        let overlaps = 0;
        let waits: number[] = [];
        for (const variant of ["plain", "keys", "rate"] as const) {
          await sql.query("TRUNCATE proc.jobs, proc.queue_limits, proc.rate_limit_windows");
          if (variant === "rate") await app.jobManager.setQueueLimits("default", { rateLimit: RATE });
          // Keys interleaved (job i has key i % KEYS), each batch one statement.
          for (const batch of argsBatches(jobs, env.sizes.batchSize))
            await app.deferJobs(
              batch.map(({ i }) => ({
                task: "noop",
                queue: "default",
                priority: 0,
                lock: null,
                queueingLock: null,
                args: { i },
                scheduledAt: null,
                flow:
                  variant === "keys"
                    ? {
                        concurrencyKey: `k${i % KEYS}`,
                        concurrencyLimit: LIMIT,
                        rateLimit: null,
                        expireAt: null,
                        uniqueForMs: null,
                      }
                    : null,
              })),
            );
          await sql.query("VACUUM ANALYZE proc.jobs");
          rates[variant] = await drainAll(sql, env.admin.url(database), system, jobs, jobMs);
          if (variant === "keys") {
            // A run of a key that started while LIMIT others of its key were running, in
            // the database's times (claim to completion).
            const { rows } = await sql.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM proc.jobs j
               WHERE (SELECT count(*) FROM proc.jobs o
                      WHERE o.concurrency_key = j.concurrency_key AND o.id <> j.id
                        AND o.started_at <= j.started_at AND o.finished_at > j.started_at) >= $1`,
              [LIMIT],
            );
            overlaps = rows[0]!.n;
            const longest = await sql.query<{ ms: number }>(
              `SELECT max(extract(epoch FROM started_at - created_at) * 1000)::float8 AS ms
               FROM proc.jobs GROUP BY concurrency_key`,
            );
            waits = longest.rows.map((r) => Number(r.ms));
          }
        }
        const work = jobMs ? `${jobMs} ms jobs` : "no-op jobs";
        const label = `12. drain ${jobs} ${work}, c=${CONCURRENCY}`;
        measures.push(
          { label: `${label}, plain`, unit: "jobs/s", better: "higher", value: rates.plain! },
          {
            label: `${label}, ${KEYS} concurrency keys of limit ${LIMIT}`,
            unit: "jobs/s",
            better: "higher",
            value: rates.keys!,
          },
          {
            label: `${label}, queue rate limit ${RATE.max}/s`,
            unit: "jobs/s",
            better: "higher",
            value: rates.rate!,
          },
          {
            label: `12. ${work}: ${KEYS} keys of limit ${LIMIT} ÷ plain`,
            unit: "×",
            better: "higher",
            value: rates.keys! / rates.plain!,
          },
          {
            label: `12. ${work}: queue rate limit ÷ plain`,
            unit: "×",
            better: "higher",
            value: rates.rate! / rates.plain!,
          },
          {
            label: `12. ${work}: runs of a key started while ${LIMIT} others ran (must be 0)`,
            unit: "runs",
            better: "lower",
            value: overlaps,
          },
          {
            label: `12. ${work}: longest wait of a key, the most waiting key`,
            unit: "ms",
            better: "lower",
            value: Math.max(...waits),
          },
          {
            label: `12. ${work}: longest wait of a key, the least waiting key`,
            unit: "ms",
            better: "lower",
            value: Math.min(...waits),
          },
        );
      }
      return measures;
    } finally {
      await app.close();
      await sql.end();
    }
  },
};
