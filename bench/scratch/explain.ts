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
  for (let k = 0; k < 100; k++) await task.batchDefer(args);
  const c = new pg.Client(url); await c.connect();
  const wid = (await c.query(`SELECT proc.register_worker_v1('w','h',1,NULL,10) AS id`)).rows[0].id;
  for (let k = 0; k < 300; k++) {
    const { rows } = await c.query(`SELECT * FROM proc.fetch_jobs_v1($1, NULL, 100)`, [wid]);
    const ids = rows.map((r: any) => r.id);
    await c.query(`SELECT * FROM proc.complete_jobs_v1($1, $2::bigint[], $3::jsonb[], false)`, [wid, ids, ids.map(() => null)]);
  }
  await c.query("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on; SET client_min_messages = log; SET auto_explain.log_level = notice");
  c.on("notice", (n) => console.log(n.message));
  const { rows } = await c.query(`SELECT * FROM proc.fetch_jobs_v1($1, NULL, 100)`, [wid]);
  const ids = rows.map((r: any) => r.id);
  await c.query(`SELECT * FROM proc.complete_jobs_v1($1, $2::bigint[], $3::jsonb[], false)`, [wid, ids, ids.map(() => null)]);
  await c.end(); await app.close();
} finally {
  await admin.query(`DROP DATABASE ${db} WITH (FORCE)`); await admin.end();
}
