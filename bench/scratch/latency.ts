import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { Worker } from "@proc/worker";
import pg from "pg";
const base = "postgres://postgres@127.0.0.1:5432/";
const admin = new pg.Client(base + "postgres"); await admin.connect();
const db = `scratch_${process.pid}`; await admin.query(`CREATE DATABASE ${db}`);
const url = base + db;
try {
  const app = new App({ connector: new PgConnector({ connectionString: url }), logger: silentLogger });
  let resolveStart: ((t: number) => void) | null = null;
  const task = app.task<{ i: number }>({ name: "noop" }, () => { resolveStart?.(performance.now()); });
  await app.open(); await app.migrate();
  const producer = new App({ connector: new PgConnector({ connectionString: url }), logger: silentLogger });
  const ptask = producer.task<{ i: number }>({ name: "noop" }, () => {});
  await producer.open();
  const { JobManager } = await import("@proc/core");
  const P = (JobManager as any).prototype; const of = P.fetchJobs;
  let fetchSent = 0, fetchDone = 0;
  P.fetchJobs = async function (...a: any[]) { const t = performance.now(); const r = await of.apply(this, a); if (r.length) { fetchSent = t; fetchDone = performance.now(); } return r; };
  const worker = new Worker(app, { concurrency: 10, handleSignals: false });
  const started = new Promise((r) => worker.once("worker:start", r));
  const running = worker.run(); await started;
  await new Promise((r) => setTimeout(r, 300));
  const lat: number[][] = [];
  for (let i = 0; i < 200; i++) {
    const startP = new Promise<number>((r) => { resolveStart = r; });
    const t0 = performance.now();
    await ptask.defer({ i });
    const t1 = performance.now();
    const ts = await startP;
    lat.push([t1 - t0, fetchSent - t1, fetchDone - fetchSent, ts - fetchDone, ts - t0]);
    await new Promise((r) => setTimeout(r, 20));
  }
  const med = (k: number) => { const v = lat.map((x) => x[k]!).sort((a, b) => a - b); return v[v.length >> 1]!.toFixed(2); };
  console.log(`defer ${med(0)} | defer-return→fetch-sent ${med(1)} | fetch ${med(2)} | fetch→start ${med(3)} | total ${med(4)}`);
  await worker.stop(); await running; await producer.close(); await app.close();
} finally { await admin.query(`DROP DATABASE ${db} WITH (FORCE)`); await admin.end(); }
