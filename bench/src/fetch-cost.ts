/**
 * Fetch cost (`fetchcost`, proc only): what proc's claim costs with 1,000,000 `todo` jobs
 * in 50 queues, for a worker of 2 of them (and, for comparison, of 1 and of all). The
 * fetch goes through JobManager.fetchJobs, the call and SQL the worker itself uses, on a
 * Queryable that wraps each statement in a transaction that is rolled back, so that every
 * repetition sees the same table. See ../README.md, scenario 10.
 */
import { hostname } from "node:os";
import { App, type Queryable, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import pg from "pg";
import { PARENT_APP_NAME, quietPool } from "./db.js";
import type { Measure, Scenario } from "./harness.js";
import { now } from "./protocol.js";
import { median } from "./stats.js";

/** Each case is timed this many times at most, and for about this long at most (ms). */
const CASE_BUDGET_MS = 5_000;
const WARM_UP = 2;

type Layout = "interleaved" | "behind";

const LAYOUTS: Record<Layout, string> = {
  interleaved: "jobs of all queues interleaved",
  behind: "the 2 queues' jobs behind the other 48's",
};

function queueName(k: number): string {
  return `q${String(k).padStart(2, "0")}`;
}

/**
 * `rows` todo jobs spread evenly over `queues` queues. "behind": the jobs of q00 and q01
 * (the worker's) come after every job of the others, in id order, as when the queues a
 * worker serves sit behind a backlog of queues it does not.
 */
async function seed(sql: pg.Pool, rows: number, queues: number, layout: Layout): Promise<void> {
  await sql.query("TRUNCATE proc.jobs");
  const queue =
    layout === "interleaved"
      ? `'q' || lpad((g % $2)::text, 2, '0')`
      : `CASE WHEN g <= $1::bigint * ($2 - 2) / $2 THEN 'q' || lpad((2 + g % ($2 - 2))::text, 2, '0')
              ELSE 'q' || lpad((g % 2)::text, 2, '0') END`;
  await sql.query(
    `INSERT INTO proc.jobs (queue_name, task_name, args)
     SELECT ${queue}, 'noop', jsonb_build_object('i', g) FROM generate_series(1, $1::int) AS g`,
    [rows, queues],
  );
  await sql.query("VACUUM ANALYZE proc.jobs");
}

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  "Rows Removed by Filter"?: number;
  Plans?: PlanNode[];
}

/** Index entries an index scan of the claim went through: rows returned plus rows filtered out. */
function indexEntriesRead(node: PlanNode): { entries: number; indexes: string[] } {
  let entries = 0;
  const indexes: string[] = [];
  const visit = (n: PlanNode) => {
    if (n["Index Name"]) {
      const loops = n["Actual Loops"] ?? 1;
      entries += ((n["Actual Rows"] ?? 0) + (n["Rows Removed by Filter"] ?? 0)) * loops;
      indexes.push(n["Index Name"]);
    }
    for (const child of n.Plans ?? []) visit(child);
  };
  visit(node);
  return { entries, indexes };
}

/**
 * Runs every statement of one fetch on `client` inside a transaction that is rolled back,
 * either timed as is, or under EXPLAIN ANALYZE with auto_explain showing the statements
 * inside the fetch function (log_nested_statements), whose plans come back as notices.
 */
class RolledBack implements Queryable {
  readonly #client: pg.Client;
  explain = false;
  /** Of the last statement: client round trip, or server execution time under EXPLAIN. */
  lastMs = Number.NaN;
  readonly notices: string[] = [];

  constructor(client: pg.Client) {
    this.#client = client;
    client.on("notice", (notice) => {
      if (this.explain) this.notices.push(notice.message ?? "");
    });
  }

  async query<Row>(sql: string, params?: readonly unknown[]): Promise<Row[]> {
    const client = this.#client;
    await client.query("BEGIN");
    try {
      if (this.explain) {
        const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params as unknown[]);
        this.lastMs = (rows[0]["QUERY PLAN"] as Array<{ "Execution Time": number }>)[0]!["Execution Time"];
      } else {
        const sent = now();
        await client.query(sql, params as unknown[]);
        this.lastMs = now() - sent;
      }
      return [];
    } finally {
      await client.query("ROLLBACK");
    }
  }
}

/** The claim statement's plan among the notices auto_explain sent for one fetch. */
function claimPlan(notices: readonly string[]): PlanNode | null {
  for (const notice of notices) {
    const at = notice.indexOf("{");
    if (at < 0) continue;
    const plan = JSON.parse(notice.slice(at)) as { "Query Text"?: string; Plan: PlanNode };
    if (plan["Query Text"]?.includes("SKIP LOCKED")) return plan.Plan;
  }
  return null;
}

export const fetchCostScenario: Scenario = {
  id: "fetchcost",
  needsWorker: false,
  systems: ["proc"],
  async run(env, _system, database) {
    const { fetchCostRows: rows, fetchCostQueues: queues, fetchCostRepeats: repeats } = env.sizes;
    const url = env.admin.url(database, PARENT_APP_NAME);
    const sql = quietPool(url, 2);
    const app = new App({ connector: new PgConnector({ pool: sql }), logger: silentLogger });
    const client = new pg.Client({ connectionString: url });
    client.on("error", () => {});
    const measures: Measure[] = [];
    try {
      await app.open();
      await app.migrate();
      await client.connect();
      // auto_explain is a contrib module shipped with PostgreSQL; LOAD needs a superuser.
      await client.query(`LOAD 'auto_explain'`);
      await client.query(`SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
        SET auto_explain.log_nested_statements = on; SET auto_explain.log_format = 'json';
        SET auto_explain.log_level = 'notice'; SET client_min_messages = 'notice'`);
      const probe = new RolledBack(client);
      const jm = app.jobManager.on(probe);
      const size = rows >= 1e6 ? `${rows / 1e6}M` : `${rows / 1e3}k`;
      const cases: Array<{ layout: Layout; listened: string[] | null; limit: number }> = [];
      for (const layout of ["interleaved", "behind"] as const)
        for (const listened of [[queueName(0), queueName(1)], [queueName(0)], null])
          for (const limit of [10, 500]) cases.push({ layout, listened, limit });
      let seeded: Layout | null = null;
      for (const { layout, listened, limit } of cases) {
        if (seeded !== layout) {
          await seed(sql, rows, queues, layout);
          seeded = layout;
        }
        const workerId = await app.jobManager.registerWorker({
          name: `bench-fetch-cost-${listened?.length ?? "all"}`,
          host: hostname(),
          pid: process.pid,
          queues: listened,
          concurrency: 10,
        });
        const fetch = () => jm.fetchJobs(workerId, listened, limit);
        const timed = async (explain: boolean): Promise<number[]> => {
          probe.explain = explain;
          const times: number[] = [];
          const budgetEnd = now() + CASE_BUDGET_MS;
          for (let i = 0; i < repeats && (i < 3 || now() < budgetEnd); i++) {
            await fetch();
            times.push(probe.lastMs);
          }
          return times;
        };
        probe.explain = false;
        for (let i = 0; i < WARM_UP; i++) await fetch();
        const roundTrips = await timed(false);
        probe.notices.length = 0;
        const serverTimes = await timed(true);
        const plan = claimPlan(probe.notices.slice(-20));
        const read = plan ? indexEntriesRead(plan) : { entries: Number.NaN, indexes: [] };
        const who = listened ? `worker of ${listened.length} of ${queues} queues` : "worker of every queue";
        const what = `10. fetch, ${size} todo jobs in ${queues} queues, ${LAYOUTS[layout]}, ${who}, limit ${limit}`;
        measures.push(
          { label: `${what}: server time`, unit: "ms", better: "lower", value: median(serverTimes) },
          { label: `${what}: round trip`, unit: "ms", better: "lower", value: median(roundTrips) },
          {
            label: `${what}: index entries read (${[...new Set(read.indexes)].join(", ") || "?"})`,
            unit: "entries",
            better: "lower",
            value: read.entries,
          },
        );
        console.error(`[fetchcost] ${what}: ${median(serverTimes).toFixed(2)} ms, ${read.entries} entries`);
      }
      return measures;
    } finally {
      await client.end().catch(() => {});
      await app.close();
      await sql.end();
    }
  },
};
