// scratch profiler: not committed
import { readFileSync } from "node:fs";
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { Worker } from "@proc/worker";
import pg from "pg";

const N = Number(process.env.N ?? 100000);
const C = Number(process.env.C ?? 10);
const base = "postgres://postgres@127.0.0.1:5432/";
const admin = new pg.Client(base + "postgres");
await admin.connect();
const db = `scratch_${process.pid}`;
await admin.query(`CREATE DATABASE ${db}`);
const url = base + db;
function cpuOf(pids: number[]) {
  let t = 0;
  for (const p of pids) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
      t += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return t * 10; // ms (100 Hz)
}
try {
  const app = new App({ connector: new PgConnector({ connectionString: url }), logger: silentLogger });
  let seen = 0;
  let firstAt = 0; const task = app.task<{ i: number }>({ name: "noop" }, () => { if (!seen++) firstAt = performance.now(); });
  await app.open();
  await app.migrate();
  const t0 = performance.now();
  const args = Array.from({ length: 1000 }, (_, i) => ({ i }));
  const cpuE = process.cpuUsage();
  for (let k = 0; k < N / 1000; k++) await task.batchDefer(args);
  const te = performance.now() - t0;
  const ce = process.cpuUsage(cpuE);
  console.log(`enqueue ${N}: ${(N / te * 1000).toFixed(0)}/s node cpu ${((ce.user + ce.system) / N).toFixed(1)} us/job`);
  if (process.env.ONLY_ENQUEUE) process.exit(0);
  const cpu0 = process.cpuUsage();
  const t1 = performance.now();
  const { JobManager } = await import("@proc/core");
  const stats: Record<string, number[]> = { fetch: [], complete: [] };
  const P = (JobManager as any).prototype;
  const of = P.fetchJobs, oc = P.completeJobs;
  P.fetchJobs = async function (...a: any[]) { const r = await of.apply(this, a); stats.fetch!.push(r.length); if (process.env.TRACE) console.log("fetch", a[2], "->", r.length, (performance.now() - t1).toFixed(1)); return r; };
  P.completeJobs = async function (...a: any[]) { stats.complete!.push(a[1].length); if (process.env.TRACE) console.log("complete", a[1].length, (performance.now() - t1).toFixed(1)); return oc.apply(this, a); };
  process.on("exit", () => { for (const [k, v] of Object.entries(stats)) console.log(k, v.length, "calls, avg", (v.reduce((x, y) => x + y, 0) / v.length).toFixed(1)); });
  const worker = new Worker(app, { concurrency: C, handleSignals: false, wait: false, ...(process.env.PF ? { prefetch: Number(process.env.PF), fetchBatchSize: Number(process.env.FB) } : {}) });
  const pidsQ = async () => (await admin.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1`, [db])).rows.map((r) => r.pid);
  
  let pgPids: number[] = [];
  const sampler = setInterval(async () => { pgPids = await pidsQ(); }, 200);
  let pgStart = 0;
  setTimeout(async () => { pgPids = await pidsQ(); pgStart = cpuOf(pgPids); }, 50);
  let startedAt = 0; worker.on("worker:start", () => { startedAt = performance.now(); });
  await worker.run();
  const dt = performance.now() - t1;
  console.log(`worker:start after ${(startedAt - t1).toFixed(1)} ms, first job after ${(firstAt - t1).toFixed(1)} ms, total ${dt.toFixed(0)} ms`);
  const pgEnd = cpuOf(pgPids);
  clearInterval(sampler);
  const c = process.cpuUsage(cpu0);
  console.log(`drain ${seen} c=${C}: ${(seen / dt * 1000).toFixed(0)}/s node cpu ${((c.user + c.system) / seen).toFixed(1)} us/job (user ${(c.user/seen).toFixed(1)}) pg cpu ~${((pgEnd - pgStart) * 1000 / seen).toFixed(1)} us/job`);
  await app.close();
} finally {
  await admin.query(`DROP DATABASE ${db} WITH (FORCE)`);
  await admin.end();
}
