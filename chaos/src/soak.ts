/**
 * The soak: a producer process defers jobs at a fixed rate while 2 worker processes
 * consume them and old jobs are deleted every 10 s. Every 5 s it samples worker RSS,
 * connections, enqueue→start latency and the jobs table's size; at the end it prints a
 * table and checks that nothing grows without bound. Exits non-zero on failure.
 *
 *   pnpm soak            10 minutes at 1,000 jobs/s
 *   pnpm soak --short    45 s at 500 jobs/s (CI); SOAK_SECONDS / SOAK_RATE override both
 */
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import {
  adminUrl,
  type Child,
  createChaosDatabase,
  PRODUCER_SCRIPT,
  percentile,
  rssMb,
  sleep,
  slope,
  spawnTs,
  spawnWorker,
  tail,
} from "./harness.js";

const short = process.argv.includes("--short");
const seconds = Number(process.env.SOAK_SECONDS ?? (short ? 45 : 600));
const rate = Number(process.env.SOAK_RATE ?? (short ? 500 : 1000));
const SAMPLE_MS = 5000;
const DELETE_EVERY_MS = 10_000;
const KEEP_SECONDS = 5;
const WORKERS = 2;
const POOL_MAX = 10; // pg's default
const CONCURRENCY = 20;

interface Sample {
  at: number; // seconds since start
  rss: number[];
  connections: number[];
  p99: number;
  p50: number;
  started: number;
  tableMb: number;
  backlog: number;
}

if (!adminUrl()) {
  console.error("the soak needs DATABASE_URL (a real Postgres)");
  process.exit(1);
}

const db = await createChaosDatabase("soak");
const app = new App({ connector: new PgConnector({ connectionString: db.url }), logger: silentLogger });
const children: Child[] = [];
let failed: string[] = [];
try {
  await app.open();
  const workers = Array.from({ length: WORKERS }, (_, i) =>
    spawnWorker(db.urlWith({ application_name: `soak_w${i}` }), {
      worker: { concurrency: CONCURRENCY, pollInterval: 1000 },
      record: "none",
    }),
  );
  children.push(...workers);
  await Promise.all(workers.map((w) => w.waitForOutput("ready", 60_000)));
  const producer = spawnTs(PRODUCER_SCRIPT, [], {
    DATABASE_URL: db.urlWith({ application_name: "soak_producer" }),
    SOAK_RATE: String(rate),
  });
  children.push(producer);
  console.log(
    `soak: ${seconds} s at ${rate} jobs/s, ${WORKERS} workers × concurrency ${CONCURRENCY}, database ${db.name}`,
  );

  const start = Date.now();
  let deleted = 0;
  // deleteOldJobs bounds the live rows; the space of deleted rows comes back only through
  // VACUUM. With autovacuum off (as on some CI servers) the soak vacuums its own table, as
  // an operator would have to.
  const [{ autovacuum }] = (await app.connector.query<{ autovacuum: string }>(
    "SELECT current_setting('autovacuum') AS autovacuum",
  )) as [{ autovacuum: string }];
  if (autovacuum !== "on")
    console.log("autovacuum is off on this server: the soak runs VACUUM proc.jobs itself");
  const deleter = setInterval(() => {
    app.jobManager
      .deleteOldJobs({ olderThanHours: KEEP_SECONDS / 3600 })
      .then(async (n) => {
        deleted += n;
        if (autovacuum !== "on") await app.connector.query("VACUUM proc.jobs");
      })
      .catch((error) => console.error(`deleteOldJobs failed: ${error}`));
  }, DELETE_EVERY_MS);

  const samples: Sample[] = [];
  const latencyCursor = workers.map(() => 0);
  while (Date.now() - start < seconds * 1000) {
    await sleep(SAMPLE_MS);
    for (const c of children)
      if (c.exited) throw new Error(`a child exited during the soak:\n${tail(c.output())}`);
    const latencies: number[] = [];
    workers.forEach((w, i) => {
      const fresh = w.messages.slice(latencyCursor[i]) as Array<{ t: string; values?: number[] }>;
      latencyCursor[i] = w.messages.length;
      for (const m of fresh) if (m.t === "lat") latencies.push(...m.values!);
    });
    const conns = await app.connector.query<{ name: string; n: number }>(
      `SELECT application_name AS name, count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() GROUP BY 1`,
    );
    const [size] = await app.connector.query<{ bytes: string; backlog: number }>(
      `SELECT pg_total_relation_size('proc.jobs') AS bytes,
              (SELECT count(*)::int FROM proc.jobs WHERE status = 'todo') AS backlog`,
    );
    const sample: Sample = {
      at: Math.round((Date.now() - start) / 1000),
      rss: workers.map((w) => rssMb(w.pid) ?? Number.NaN),
      connections: workers.map((_, i) => conns.find((c) => c.name === `soak_w${i}`)?.n ?? 0),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      started: latencies.length,
      tableMb: Number(size!.bytes) / 2 ** 20,
      backlog: size!.backlog,
    };
    samples.push(sample);
    console.log(
      `t=${String(sample.at).padStart(4)}s rss=${sample.rss.map((r) => r.toFixed(1)).join("/")} MB ` +
        `conns=${sample.connections.join("/")} started=${sample.started} p50=${sample.p50}ms p99=${sample.p99}ms ` +
        `table=${sample.tableMb.toFixed(1)} MB backlog=${sample.backlog}`,
    );
  }
  clearInterval(deleter);
  producer.proc.kill("SIGTERM");
  await producer.exit;
  const produced = (producer.messages.filter((m) => (m as { t: string }).t === "deferred").at(-1) ?? {
    deferred: 0,
    errors: 0,
  }) as { deferred: number; errors: number };
  // Let the workers finish what is left, then stop them.
  const drainDeadline = Date.now() + 60_000;
  for (;;) {
    const [row] = await app.connector.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM proc.jobs WHERE status IN ('todo', 'doing')",
    );
    if (row!.n === 0 || Date.now() > drainDeadline) break;
    await sleep(250);
  }
  for (const w of workers) w.proc.kill("SIGTERM");
  const exits = await Promise.all(workers.map((w) => w.exit));
  const [final] = await app.connector.query<{ left: number; bad: number; succeeded: number }>(
    `SELECT count(*) FILTER (WHERE status IN ('todo', 'doing'))::int AS left,
            count(*) FILTER (WHERE status NOT IN ('todo', 'doing', 'succeeded'))::int AS bad,
            count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded
       FROM proc.jobs`,
  );

  // ---- verdict ------------------------------------------------------------------
  const half = samples.slice(Math.floor(samples.length / 2));
  const rssSlopes = workers.map((_, i) => slope(half.map((s) => [s.at / 60, s.rss[i]!] as const)));
  const window = Math.max(1, Math.round(Math.min(60, seconds / 3) / (SAMPLE_MS / 1000)));
  const windowP99 = (part: Sample[]) => Math.max(...part.filter((s) => s.started > 0).map((s) => s.p99));
  const firstP99 = windowP99(samples.slice(0, window));
  const lastP99 = windowP99(samples.slice(-window));
  const firstHalf = samples.slice(0, Math.floor(samples.length / 2));
  const connMax = Math.max(...samples.flatMap((s) => s.connections));
  const tableFirst = Math.max(...firstHalf.map((s) => s.tableMb));
  const tableLast = Math.max(...half.map((s) => s.tableMb));
  const summary = {
    seconds,
    rate,
    produced: produced.deferred,
    produceErrors: produced.errors,
    achievedRate: Math.round(produced.deferred / seconds),
    deletedByDeleteOldJobs: deleted,
    leftUnfinished: final!.left,
    notSucceeded: final!.bad,
    rssMbPerMin: rssSlopes.map((s) => Number(s.toFixed(2))),
    rssMbLast: samples.at(-1)!.rss.map((r) => Number(r.toFixed(1))),
    connectionsPerWorkerMax: connMax,
    p99FirstMs: firstP99,
    p99LastMs: lastP99,
    tableMbFirstHalfMax: Number(tableFirst.toFixed(1)),
    tableMbSecondHalfMax: Number(tableLast.toFixed(1)),
    workerExitCodes: exits.map((e) => e.code),
  };
  console.log(`soak summary: ${JSON.stringify(summary)}`);
  console.table(
    samples.map((s) => ({
      t: s.at,
      rss: s.rss.map((r) => r.toFixed(1)).join("/"),
      conns: s.connections.join("/"),
      started: s.started,
      p50: s.p50,
      p99: s.p99,
      tableMb: s.tableMb.toFixed(1),
      backlog: s.backlog,
    })),
  );

  const check = (ok: boolean, what: string) => {
    if (!ok) failed.push(what);
  };
  check(produced.errors === 0, `the producer hit ${produced.errors} errors`);
  check(
    produced.deferred >= rate * seconds * 0.9,
    `produced ${produced.deferred}, expected ~${rate * seconds}`,
  );
  check(final!.left === 0, `${final!.left} jobs left todo/doing after the drain`);
  check(final!.bad === 0, `${final!.bad} jobs ended in another status than succeeded`);
  check(
    exits.every((e) => e.code === 0),
    "a worker did not exit 0 on SIGTERM",
  );
  // The slope is meaningful once warm-up is over: on runs of 5 min or more it must stay under
  // 5 MB/min; a short run (CI) only checks that the second half adds less than 40 MB.
  for (const [i, s] of rssSlopes.entries()) {
    if (seconds >= 300) check(s < 5, `worker ${i} RSS grows by ${s.toFixed(2)} MB/min (limit 5)`);
    else {
      const growth = half.at(-1)!.rss[i]! - half[0]!.rss[i]!;
      check(growth < 40, `worker ${i} RSS grew by ${growth.toFixed(1)} MB in the second half (limit 40)`);
    }
  }
  check(
    connMax <= POOL_MAX + 3,
    `a worker held ${connMax} connections (limit pool max + 3 = ${POOL_MAX + 3})`,
  );
  // Table size is bounded: deleteOldJobs keeps ~15 s of jobs, vacuum reuses the space.
  check(
    tableLast <= Math.max(2 * tableFirst, 64),
    `jobs table grew from ${tableFirst.toFixed(1)} to ${tableLast.toFixed(1)} MB`,
  );
  // Latency does not degrade (a 50 ms floor keeps a ~5 ms p99 from failing on noise).
  check(lastP99 <= Math.max(3 * firstP99, 50), `p99 latency grew from ${firstP99} to ${lastP99} ms`);
} catch (error) {
  failed = [`soak crashed: ${(error as Error).stack}`];
} finally {
  for (const c of children) if (!c.exited) c.proc.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exit));
  await app.close();
  await db.drop();
}
if (failed.length) {
  console.error(`soak FAILED:\n  - ${failed.join("\n  - ")}`);
  process.exit(1);
}
console.log("soak passed");
