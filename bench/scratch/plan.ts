import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import pg from "pg";
const base = "postgres://postgres@127.0.0.1:5432/";
const admin = new pg.Client(base + "postgres"); await admin.connect();
const db = `scratch_${process.pid}`; await admin.query(`CREATE DATABASE ${db}`);
const url = base + db;
try {
  const app = new App({ connector: new PgConnector({ connectionString: url }), logger: silentLogger });
  const task = app.task<{ i: number }>({ name: "noop" }, () => {});
  await app.open(); await app.migrate();
  const c = new pg.Client(url); await c.connect();
  if (process.env.SETUP) await c.query((await import("node:fs")).readFileSync(process.env.SETUP, "utf8"));
  const wid = (await c.query(`SELECT proc.register_worker_v1('w','h',1,NULL,10) AS id`)).rows[0].id;
  const FETCH = process.env.FETCH ?? `SELECT * FROM proc.fetch_jobs_v1($1, NULL, $2)`;
  const ts: number[] = [];
  for (let i = 0; i < 300; i++) {
    await task.defer({ i });
    const t = performance.now();
    const { rows } = await c.query(FETCH, [wid, 100]);
    ts.push(performance.now() - t);
    if (rows.length !== 1) throw new Error("got " + rows.length);
    await c.query(`SELECT * FROM proc.complete_jobs_v1($1, $2::bigint[], $3::jsonb[], false)`, [wid, [rows[0].id], [null]]);
  }
  ts.sort((a, b) => a - b); console.log("fetch 1 job p50", ts[150]!.toFixed(3), "ms");
  await c.end(); await app.close();
} finally { await admin.query(`DROP DATABASE ${db} WITH (FORCE)`); await admin.end(); }
