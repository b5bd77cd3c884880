import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import pg from "pg";
const base = "postgres://postgres@127.0.0.1:5432/";
const admin = new pg.Client(base + "postgres");
await admin.connect();
const db = `scratch_${process.pid}`;
await admin.query(`CREATE DATABASE ${db}`);
const url = base + db;
try {
  const app = new App({ connector: new PgConnector({ connectionString: url }), logger: silentLogger });
  const task = app.task<{ i: number }>({ name: "noop" }, () => {});
  await app.open(); await app.migrate();
  const args = Array.from({ length: 1000 }, (_, i) => ({ i }));
  for (let k = 0; k < 60; k++) await task.batchDefer(args);
  const c = new pg.Client(url); await c.connect();
  if (process.env.SETUP) await c.query((await import("node:fs")).readFileSync(process.env.SETUP, "utf8"));
  const wid = (await c.query(`SELECT proc.register_worker_v1('w','h',1,NULL,10) AS id`)).rows[0].id;
  const bpid = (await c.query("SELECT pg_backend_pid() AS p")).rows[0].p;
  const { readFileSync } = await import("node:fs");
  const cpu = () => { const f = readFileSync(`/proc/${bpid}/stat`, "utf8").split(") ")[1]!.split(" "); return (Number(f[11]) + Number(f[12])) * 10; };
  const cpu0 = cpu();
  const B = Number(process.env.B ?? 100);
  let tf = 0, tc = 0, n = 0;
  const FETCH = process.env.FETCH ?? `SELECT * FROM proc.fetch_jobs_v1($1, NULL, $2)`;
  const COMPLETE = process.env.COMPLETE ?? `SELECT * FROM proc.complete_jobs_v1($1, $2::bigint[], $3::jsonb[], false)`;
  for (let k = 0; k < 40000 / B; k++) {
    let t = performance.now();
    const { rows } = await c.query(FETCH, [wid, B]);
    tf += performance.now() - t;
    const ids = rows.map((r: any) => r.id);
    t = performance.now();
    await c.query(COMPLETE, [wid, ids, ids.map(() => null)]);
    tc += performance.now() - t;
    n += ids.length;
  }
  console.log(`pg cpu ${((cpu() - cpu0) * 1000 / n).toFixed(1)} us/job`);
  console.log(`B=${B} n=${n} fetch ${(tf * 1000 / n).toFixed(1)} us/job, complete ${(tc * 1000 / n).toFixed(1)} us/job`);
  await c.end(); await app.close();
} finally {
  await admin.query(`DROP DATABASE ${db} WITH (FORCE)`); await admin.end();
}
