// Page and query timings of @proc/dashboard on a big table: 1,000,000 finished jobs and 100,000
// waiting ones (scripts/perf-fill.sql), in a database of its own on DATABASE_URL's server.
// Each page is served by the real handler on the real database: its time (median and p95 of
// PERF_RUNS requests after two warm-ups), then every statement it ran, replayed under
// EXPLAIN (ANALYZE, BUFFERS): their summed execution time is the page's cost to the database.
// The overview is timed twice: after a change (a dashboard of its own per request, so that
// nothing is cached: what each refresh costs while jobs move) and unchanged (served from the
// overview cache after reading the activity signature).
//
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres pnpm --filter @proc/dashboard perf [--fill] [--plans]
//
// --fill drops and refills the database (about 15 s); --plans prints every query plan.
import { readFileSync } from "node:fs";
import { App, type Connector } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import pg from "pg";
import { createDashboard } from "../src/index.js";

const server = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const DATABASE = "proc_dashboard_perf";
const RUNS = Number(process.env.PERF_RUNS ?? 15);
const url = new URL(server);
url.pathname = `/${DATABASE}`;
const fill = process.argv.includes("--fill");
const showPlans = process.argv.includes("--plans");

async function prepare(): Promise<void> {
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  const exists = (await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [DATABASE])).rowCount;
  if (exists && !fill) {
    await admin.end();
    return;
  }
  await admin.query(`DROP DATABASE IF EXISTS ${DATABASE}`);
  await admin.query(`CREATE DATABASE ${DATABASE}`);
  await admin.end();
  const app = new App({ connector: new PgConnector({ connectionString: url.href }) });
  await app.open();
  await app.migrate();
  await app.close();
  const client = new pg.Client({ connectionString: url.href });
  await client.connect();
  const started = performance.now();
  const sql = readFileSync(new URL("./perf-fill.sql", import.meta.url), "utf8").replaceAll(
    ':"schema"',
    '"proc"',
  );
  await client.query(sql);
  await client.query("VACUUM ANALYZE proc.jobs");
  console.log(`filled ${DATABASE} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  await client.end();
}

/** The connector, recording the statements run while `recording` holds an array. */
function recordingConnector(inner: PgConnector): {
  connector: Connector;
  recording: { log: Statement[] | null };
} {
  const recording: { log: Statement[] | null } = { log: null };
  const connector = new Proxy(inner, {
    get(target, key, receiver) {
      if (key === "query")
        return (sql: string, params?: readonly unknown[]) => {
          recording.log?.push({ sql, params: params ?? [] });
          return target.query(sql, params);
        };
      const value = Reflect.get(target, key, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { connector, recording };
}

interface Statement {
  sql: string;
  params: readonly unknown[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;

await prepare();
const { connector, recording } = recordingConnector(new PgConnector({ connectionString: url.href }));
const app = new App({ connector });
await app.open();
const explain = new pg.Client({ connectionString: url.href });
await explain.connect();
const dashboard = createDashboard(app, { actions: true, token: "perf-token-0123456789" });

const [failed] = await app.jobManager.searchJobs({ status: "failed", limit: 1 });
const day = 86_400_000;
const iso = (ms: number) => new Date(Date.now() - ms).toISOString().slice(0, 16);
const [firstLock] = (await app.jobManager.listLockHolders(100)).locks.slice(-1);
const PAGES: Array<[string, string, "fresh"?]> = [
  ["overview, after a change", "/", "fresh"],
  ["overview, unchanged (cached)", "/"],
  ["jobs, newest", "/jobs"],
  ["jobs, status failed", "/jobs?status=failed"],
  ["jobs, queue billing + failed (2 ranges)", "/jobs?queue=billing&status=failed"],
  ["jobs, queue billing + succeeded", "/jobs?queue=billing&status=succeeded"],
  ["jobs, task + lock (rare)", "/jobs?task=task_2&lock=account:4242"],
  ["jobs, worker", "/jobs?worker=1007"],
  ["jobs, created 2 to 1 days ago", `/jobs?from=${iso(2 * day)}&to=${iso(day)}`],
  ["jobs, search text in args", "/jobs?q=user4242%40"],
  ["jobs, search JSON in args", `/jobs?q=${encodeURIComponent('{"user_id": 4242}')}`],
  ["jobs, page 5 (keyset)", "/jobs?before=1099800"],
  ["job detail", `/jobs/${failed?.id ?? 1}`],
  ["workers", "/workers"],
  ["periodic", "/periodic"],
  ["locks", "/locks"],
  [
    "locks, page 2 (keyset)",
    `/locks?after=${encodeURIComponent(`${firstLock?.holder ? "h" : "f"}.${firstLock?.waiting}.${firstLock?.name}`)}`,
  ],
];

const rows: string[] = [];
const plans: string[] = [];
for (const [name, path, fresh] of PAGES) {
  const request = async () => {
    const handler = fresh ? createDashboard(app) : dashboard;
    const response = await handler(new Request(`http://perf.test${path}`));
    if (fresh) await handler.close();
    return response;
  };
  for (let i = 0; i < 2; i++) await (await request()).text();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const response = await request();
    await response.text();
    times.push(performance.now() - t);
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}`);
  }
  recording.log = [];
  await (await request()).text();
  const statements = recording.log;
  recording.log = null;
  let dbMs = 0;
  let plainMs = 0;
  for (const s of statements) {
    // Each statement on its own, as the page runs it (no instrumentation), best of three.
    let best = Number.POSITIVE_INFINITY;
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      await explain.query(s.sql, [...s.params]);
      best = Math.min(best, performance.now() - t0);
    }
    plainMs += best;
    const result = await explain.query(`EXPLAIN (ANALYZE, BUFFERS) ${s.sql}`, [...s.params]);
    const lines = result.rows.map((r: Record<string, string>) => r["QUERY PLAN"]!);
    dbMs += Number(/Execution Time: ([\d.]+) ms/.exec(lines.at(-1) ?? "")?.[1] ?? 0);
    plans.push(`### ${name}: ${s.sql.split("\n")[0]!.slice(0, 90)}\n\n\`\`\`\n${lines.join("\n")}\n\`\`\`\n`);
  }
  rows.push(
    `| ${name} | \`${path.length > 48 ? `${path.slice(0, 45)}...` : path}\` | ${median(times).toFixed(1)} | ${p95(times).toFixed(1)} | ${statements.length} | ${plainMs.toFixed(1)} | ${dbMs.toFixed(1)} |`,
  );
  console.error(rows.at(-1));
}

// The live feed's poll, every pollInterval while a browser watches.
const signature: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const t = performance.now();
  await app.jobManager.activitySignature();
  signature.push(performance.now() - t);
}

const [{ count }] = (await explain.query("SELECT count(*)::int AS count FROM proc.jobs")).rows;
console.log(
  `\n${count.toLocaleString("en-US")} jobs, PostgreSQL ${(await explain.query("SHOW server_version")).rows[0].server_version}, ${RUNS} runs per page\n`,
);
console.log(
  "| page | path | median ms | p95 ms | statements | DB ms (statements alone, summed) | DB ms (EXPLAIN ANALYZE, summed) |",
);
console.log("|---|---|---:|---:|---:|---:|---:|");
for (const row of rows) console.log(row);
console.log(
  `\nlive poll (activity signature, every pollInterval while watched): median ${median(signature).toFixed(1)} ms`,
);
if (showPlans) console.log(`\n${plans.join("\n")}`);

await dashboard.close();
await app.close();
await explain.end();
