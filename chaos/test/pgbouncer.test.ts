/**
 * proc behind PgBouncer. Transaction pooling: workers and deferrers with
 * `listenNotify: false` defer, run, retry, cancel, abort (by polling) and dedup periodic
 * ticks. Session pooling: everything, LISTEN included.
 */
import { App, type Job, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { periodic, scheduler } from "@proc/scheduler";
import { Worker } from "@proc/worker";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminUrl, type ChaosDatabase, createChaosDatabase, sleep, until } from "../src/harness.js";
import { type PgBouncer, pgBouncerSuiteEnabled, startPgBouncer } from "../src/pgbouncer.js";

const enabled = !!adminUrl() && pgBouncerSuiteEnabled();

function makeApp(url: string) {
  const app = new App({ connector: new PgConnector({ connectionString: url }), logger: silentLogger }).use(
    scheduler(),
  );
  app.task({ name: "echo" }, async (args: Record<string, unknown>) => args);
  app.task({ name: "flaky", retry: { maxAttempts: 5, wait: 50 } }, async (_args: object, ctx) => {
    if (ctx.job.attempts < 3) throw new Error(`planned failure ${ctx.job.attempts}`);
    return ctx.job.attempts;
  });
  app.task({ name: "sleepy" }, async ({ ms }: { ms: number }, ctx) => {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      });
    });
  });
  const tick = app.task({ name: "tick" }, async ({ timestamp }: { timestamp: number }) => timestamp);
  periodic(app, { cron: "* * * * * *" }, tick);
  return app;
}

describe.runIf(enabled)("PgBouncer, transaction pooling (pg)", () => {
  let db: ChaosDatabase;
  let bouncer: PgBouncer;
  let apps: App[];
  let workers: Worker[];
  let runs: Promise<void>[];

  beforeAll(async () => {
    db = await createChaosDatabase("bouncer_tx", { migrate: false });
    bouncer = await startPgBouncer(adminUrl()!, { mode: "transaction" });
    const url = bouncer.url(db.url);
    // Two processes' worth of apps, each its own pool through the bouncer.
    apps = [makeApp(url), makeApp(url)];
    await apps[0]!.open();
    // Migrations take a transaction-scoped advisory lock: fine in transaction mode.
    expect(await apps[0]!.migrate()).not.toEqual([]);
    workers = apps.map(
      (app) =>
        new Worker(app, {
          listenNotify: false,
          pollInterval: 100,
          abortPollInterval: 100,
          heartbeatInterval: 500,
          handleSignals: false,
          concurrency: 4,
        }),
    );
    runs = workers.map((w) => w.run());
    await until(async () => (await apps[0]!.jobManager.listWorkers()).length === 2, { what: "2 workers" });
  });

  afterAll(async () => {
    await Promise.all(workers?.map((w) => w.stop()) ?? []);
    await Promise.all(runs ?? []);
    for (const app of apps ?? []) await app.close();
    await bouncer?.stop();
    await db?.drop();
  });

  const job = async (id: number): Promise<Job> => (await apps[0]!.jobManager.getJob(id))!;
  const settled = (id: number, status: string) =>
    until(async () => (await job(id)).status === status, { timeoutMs: 15_000, what: `job ${id} ${status}` });

  it("defers and runs jobs (single and batch)", async () => {
    const app = apps[0]!;
    const id = await app.configureTask("echo").defer({ hello: "bouncer", n: [1, 2] });
    const ids = await app.configureTask("echo").batchDefer(Array.from({ length: 50 }, (_, i) => ({ i })));
    await settled(id, "succeeded");
    for (const i of ids) await settled(i, "succeeded");
    expect((await job(id)).result).toEqual({ hello: "bouncer", n: [1, 2] });
    expect((await job(ids[7]!)).result).toEqual({ i: 7 });
  });

  it("defers inside the caller's transaction", async () => {
    const client = new pg.Client({ connectionString: bouncer.url(db.url) });
    await client.connect();
    try {
      await client.query("BEGIN");
      const id = await apps[0]!.configureTask("echo").defer({ in: "tx" }, { connection: client });
      await client.query("COMMIT");
      await settled(id, "succeeded");
    } finally {
      await client.end();
    }
  });

  it("retries", async () => {
    const id = await apps[0]!.configureTask("flaky").defer({});
    await settled(id, "succeeded");
    expect(await job(id)).toMatchObject({ attempts: 3, result: 3 });
  });

  it("cancels a waiting job", async () => {
    const id = await apps[0]!
      .configureTask("echo")
      .configure({ scheduleIn: { hours: 1 } })
      .defer({});
    expect(await apps[0]!.jobManager.cancelJob(id)).toBe("cancelled");
    expect((await job(id)).status).toBe("cancelled");
  });

  it("aborts a running job by polling (no NOTIFY)", async () => {
    const id = await apps[0]!.configureTask("sleepy").defer({ ms: 60_000 });
    await settled(id, "doing");
    const asked = Date.now();
    await apps[1]!.jobManager.cancelJob(id, { abort: true });
    await settled(id, "aborted");
    console.log(`pgbouncer (transaction): abort delivered by polling in ${Date.now() - asked} ms`);
  });

  it("defers each periodic tick exactly once across two schedulers", async () => {
    await sleep(4000);
    const rows = await apps[0]!.connector.query<{ ts: string; n: number }>(
      "SELECT args->>'timestamp' AS ts, count(*)::int AS n FROM proc.jobs WHERE task_name = 'tick' GROUP BY 1",
    );
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.filter((r) => r.n !== 1)).toEqual([]);
  });
});

describe.runIf(enabled)("PgBouncer, session pooling (pg)", () => {
  it("supports everything, LISTEN/NOTIFY included", async () => {
    const db = await createChaosDatabase("bouncer_session");
    // Dropped whatever fails below, PgBouncer's start included.
    await using _dropDb = { [Symbol.asyncDispose]: () => db.drop() };
    const bouncer = await startPgBouncer(adminUrl()!, { mode: "session" });
    const app = makeApp(bouncer.url(db.url));
    const worker = new Worker(app, { pollInterval: 60_000, handleSignals: false });
    await app.open();
    const run = worker.run();
    try {
      await until(async () => (await app.jobManager.listWorkers()).length === 1, { what: "the worker" });
      await sleep(300);
      const id = await app.configureTask("echo").defer({ via: "session" });
      // pollInterval is 60 s: only NOTIFY can start it this soon. waitForJob is LISTEN-driven too.
      expect(await app.jobManager.waitForJob(id, { timeoutMs: 5000 })).toMatchObject({
        status: "succeeded",
        result: { via: "session" },
      });
    } finally {
      await worker.stop();
      await run;
      await app.close();
      await bouncer.stop();
    }
  });
});
