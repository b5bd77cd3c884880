// A periodic task every 2 seconds, three worker processes each running the scheduler:
// check that each tick ran exactly once. See README.md.
import {
  killAllWorkers,
  spawnWorker,
  ExampleRun,
  createDatabase,
  databaseUrlOrSkip,
  log,
  rel,
  sleep,
  waitFor,
} from "@proc/example-support";

const WORKER_SCRIPT = new URL("./worker.ts", import.meta.url);

const PERIOD_S = 2; // the cron "*/2 * * * * *" in src/app.ts
const WINDOW_MS = 10_000;
const WORKERS = 3;

const adminUrl = databaseUrlOrSkip();
log(`periodic: a task every ${PERIOD_S} s, ${WORKERS} worker processes each running the scheduler`);
const db = await createDatabase(adminUrl, "periodic");
log(`created database ${db.name}`);
const runner = new ExampleRun("periodic", db, killAllWorkers);

// The app module reads DATABASE_URL, like the workers' copy of it does.
process.env.DATABASE_URL = db.url;
const { app, CREATE_TICKS_TABLE } = await import("./app.js");
const { checks } = runner;

try {
  await app.open();
  await app.migrate();
  await app.connector.query(CREATE_TICKS_TABLE);
  log("migrated (app.migrate()) and created the ticks table");
  await run();
} catch (error) {
  runner.fail(error);
} finally {
  killAllWorkers();
  await app.close().catch(() => {});
  await runner.dropDatabase();
}
runner.exit();

interface TickRow {
  tick: string; // bigint
  job_id: string; // bigint
  pid: number;
  ran_at: Date;
}

async function run(): Promise<void> {
  const workers = Array.from({ length: WORKERS }, (_, i) =>
    spawnWorker(`W${i + 1}`, WORKER_SCRIPT, { DATABASE_URL: db.url }),
  );
  log(`spawned ${workers.map((w) => `${w.label} (pid ${w.pid})`).join(", ")}`);
  await waitFor(
    "the workers to register",
    async () => {
      const rows = await app.jobManager.listWorkers();
      return workers.every((w) => rows.some((r) => r.pid === w.pid));
    },
    { timeoutMs: 30_000 },
  );
  const label = (pid: number) => workers.find((w) => w.pid === pid)?.label ?? `pid ${pid}`;
  const windowStart = Date.now();
  log(`all ${WORKERS} workers registered; watching the ticks for ${WINDOW_MS / 1000} s`);

  const printed = new Set<string>();
  const readTicks = async () => {
    const rows = await app.connector.query<TickRow>(
      "SELECT tick, job_id, pid, ran_at FROM ticks ORDER BY ran_at",
    );
    for (const row of rows) {
      if (printed.has(row.job_id)) continue;
      printed.add(row.job_id);
      const tick = Number(row.tick);
      const lateMs = row.ran_at.getTime() - tick * 1000;
      log(
        `tick ${new Date(tick * 1000).toISOString().slice(11, 19)}Z (${rel(tick * 1000).trim()}, timestamp ${tick}) ` +
          `→ job ${row.job_id} ran on ${label(row.pid)} (pid ${row.pid}), ${lateMs} ms after the tick`,
      );
    }
    return rows;
  };
  while (Date.now() < windowStart + WINDOW_MS) {
    await readTicks();
    await sleep(200);
  }

  const stopAt = Date.now();
  for (const w of workers) w.child.kill("SIGTERM");
  log(`SIGTERM → ${workers.map((w) => w.label).join(", ")}: graceful stop`);
  const exits = await Promise.all(
    workers.map((w) => Promise.race([w.exited, sleep(40_000).then(() => null)])),
  );
  const rows = await readTicks();

  console.log("");
  workers.forEach((w, i) => {
    const exit = exits[i];
    checks.check(
      exit?.code === 0,
      exit
        ? `${w.label} exited with code ${exit.code}${exit.signal ? ` (signal ${exit.signal})` : ""}`
        : `${w.label} did not exit`,
    );
  });

  // What ran: one row per run of the task.
  const ticks = rows.map((r) => Number(r.tick));
  const unique = [...new Set(ticks)].sort((x, y) => x - y);
  const duplicates = unique.filter((t) => ticks.filter((u) => u === t).length > 1);
  const gaps = unique.slice(1).filter((t, i) => t - unique[i]! !== PERIOD_S);
  const perWorker = workers.map((w) => `${w.label} ${rows.filter((r) => r.pid === w.pid).length}`).join(", ");
  log(`${rows.length} runs of ${unique.length} ticks (${perWorker})`);
  checks.check(unique.length >= 4, `at least 4 ticks ran in ~${WINDOW_MS / 1000} s (${unique.length})`);
  checks.check(duplicates.length === 0, `no tick ran twice (duplicates: ${JSON.stringify(duplicates)})`);
  checks.check(
    gaps.length === 0 && unique.every((t) => t % PERIOD_S === 0),
    `no gap: the ticks are consecutive ${PERIOD_S} s steps from the first to the last (${JSON.stringify(unique)})`,
  );
  const first = unique[0] ?? Number.NaN;
  const last = unique.at(-1) ?? Number.NaN;
  checks.check(
    first * 1000 <= windowStart + PERIOD_S * 1000 + 1000 && last * 1000 >= stopAt - 2 * PERIOD_S * 1000,
    `the ticks cover the whole window (${rel(first * 1000).trim()} … ${rel(last * 1000).trim()}, ` +
      `window ${rel(windowStart).trim()} … ${rel(stopAt).trim()})`,
  );

  // What was deferred: one job per tick, even for a tick deferred just before the stop.
  const jobs = await app.jobManager.listJobs({ task: "record_tick", limit: 1000 });
  const jobTicks = jobs.map((j) => Number((j.args as { timestamp: number }).timestamp));
  const deferredTwice = [...new Set(jobTicks)].filter((t) => jobTicks.filter((u) => u === t).length > 1);
  checks.check(
    deferredTwice.length === 0,
    `each tick was deferred once by the ${WORKERS} schedulers (${jobs.length} jobs; twice: ${JSON.stringify(deferredTwice)})`,
  );
  const notRun = jobs.filter((j) => j.status !== "succeeded");
  if (notRun.length)
    log(
      `not run before the stop: ${notRun.map((j) => `job ${j.id} (tick ${String(j.args.timestamp)}, ${j.status})`).join(", ")}`,
    );
  checks.check(
    notRun.every((j) => Number(j.args.timestamp) > last),
    "every job deferred up to the last tick ran",
  );
}
