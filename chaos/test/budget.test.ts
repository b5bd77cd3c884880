/**
 * Connection budget: a worker uses at most `pool max + 3` connections (the pool its tasks
 * and deferrers share, one dedicated LISTEN connection, and two connections reserved for
 * its own fetch/complete/heartbeat), whatever its concurrency; and a pool exhausted by
 * tasks holding connections never delays completions or heartbeats.
 */
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { describe, expect, it } from "vitest";
import {
  adminQuery,
  adminUrl,
  type Child,
  createChaosDatabase,
  sleep,
  spawnWorker,
  tail,
  until,
} from "../src/harness.js";

const FLEET = 20;
const CONCURRENCY = 10;
// pg's default pool max is 10: 20 × 13 connections would not fit in a default server's
// max_connections (100), which this suite shares with others. The bound is the same
// formula for any max: pool max + 3.
const POOL_MAX = 1;
const BUDGET = POOL_MAX + 3;

describe.skipIf(!adminUrl())("connection budget (pg)", () => {
  it(`${FLEET} workers × concurrency ${CONCURRENCY} stay within pool max + 3 connections each`, {
    timeout: 240_000,
  }, async () => {
    const [{ free }] = (await adminQuery<{ free: number }>(
      `SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
              - (SELECT count(*)::int FROM pg_stat_activity) AS free`,
    )) as [{ free: number }];
    expect(free, "free connections on the server").toBeGreaterThan(FLEET * BUDGET + 5);

    const db = await createChaosDatabase("budget");
    const app = new App({ connector: new PgConnector({ connectionString: db.url }), logger: silentLogger });
    const children: Child[] = [];
    try {
      await app.open();
      for (let i = 0; i < FLEET; i++)
        children.push(
          spawnWorker(db.urlWith({ application_name: `w${i}` }), {
            worker: { concurrency: CONCURRENCY, pollInterval: 1000, heartbeatInterval: 1000 },
            poolMax: POOL_MAX,
          }),
        );
      await Promise.all(children.map((c) => c.waitForOutput("ready", 120_000)));

      const peak = new Map<string, number>();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const rows = await app.connector.query<{ name: string; n: number }>(
            `SELECT application_name AS name, count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND application_name ~ '^w[0-9]+$' GROUP BY 1`,
          );
          for (const r of rows) peak.set(r.name, Math.max(peak.get(r.name) ?? 0, r.n));
          await sleep(100);
        }
      })();

      const jobs = 10_000;
      const deferrer = app.configureTask("chaos", { allowUnknown: true });
      for (let i = 0; i < jobs; i += 2000)
        await deferrer.batchDefer(Array.from({ length: 2000 }, () => ({ ms: 50 })));
      await until(
        async () =>
          (
            await app.connector.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM proc.jobs WHERE status = 'succeeded'",
            )
          )[0]!.n === jobs,
        { timeoutMs: 120_000, intervalMs: 250, what: "the drain" },
      );
      sampling = false;
      await sampler;

      const perWorker = [...peak.entries()].sort(([a], [b]) => Number(a.slice(1)) - Number(b.slice(1)));
      console.log(
        `connection budget: ${FLEET} workers × concurrency ${CONCURRENCY}, pool max ${POOL_MAX}: peak connections per worker ${JSON.stringify(Object.fromEntries(perWorker))}; max ${Math.max(...peak.values())}, total peak ≤ ${[...peak.values()].reduce((a, b) => a + b, 0)}`,
      );
      expect(peak.size).toBe(FLEET);
      for (const [name, n] of perWorker) expect(n, name).toBeLessThanOrEqual(BUDGET);
      for (const c of children) c.proc.kill("SIGTERM");
      for (const c of children) expect((await c.exit).code, tail(c.output())).toBe(0);
    } finally {
      for (const c of children) if (!c.exited) c.proc.kill("SIGKILL");
      await Promise.all(children.map((c) => c.exit));
      await app.close();
      await db.drop();
    }
  });

  it("a pool exhausted by tasks holding connections never deadlocks completions or heartbeats", {
    timeout: 120_000,
  }, async () => {
    const db = await createChaosDatabase("pool");
    const app = new App({ connector: new PgConnector({ connectionString: db.url }), logger: silentLogger });
    let child: Child | undefined;
    try {
      await app.open();
      // 4 slots, 2 connections: two tasks hold both, two more wait for one, and the
      // worker's own fetches, completions and heartbeats queue behind them.
      child = spawnWorker(db.url, {
        worker: { concurrency: 4, pollInterval: 500, heartbeatInterval: 500 },
        poolMax: 2,
      });
      await child.waitForOutput("ready", 60_000);
      const ids = await app
        .configureTask("hold", { allowUnknown: true })
        .batchDefer(Array.from({ length: 8 }, () => ({ ms: 2000 })));
      let maxHeartbeatAge = 0;
      const done = await until(
        async () => {
          const [w] = await app.connector.query<{ age: number }>(
            "SELECT extract(epoch FROM now() - last_heartbeat_at)::float8 AS age FROM proc.workers",
          );
          maxHeartbeatAge = Math.max(maxHeartbeatAge, w?.age ?? Number.POSITIVE_INFINITY);
          const [c] = await app.connector.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM proc.jobs WHERE id = ANY($1) AND status = 'succeeded'",
            [ids],
          );
          return c!.n === ids.length;
        },
        { timeoutMs: 60_000, intervalMs: 200, what: "the held jobs to complete" },
      ).catch((error) => {
        throw new Error(`${error.message}\n${tail(child!.output())}`);
      });
      console.log(
        `exhausted pool: 8 × 2 s jobs on 2 connections done; oldest heartbeat seen ${maxHeartbeatAge.toFixed(2)} s`,
      );
      expect(done).toBe(true);
      // A held connection is released every 2 s, so a heartbeat waits at most that long,
      // far from any stalled threshold (30 s by default).
      expect(maxHeartbeatAge).toBeLessThan(8);
      expect(await app.jobManager.getStalledJobs({ heartbeatSeconds: 10 })).toEqual([]);
      child.proc.kill("SIGTERM");
      expect((await child.exit).code).toBe(0);
    } finally {
      if (child && !child.exited) child.proc.kill("SIGKILL");
      await child?.exit;
      await app.close();
      await db.drop();
    }
  });

  // Known bug (see chaos/README.md, "Findings"): heartbeats share the pool with tasks, so a
  // task that holds every pooled connection for longer than heartbeatSeconds makes its
  // live worker look dead, and its jobs are recovered as stalled while they still run.
  it("heartbeats are not starved by tasks holding every pooled connection", { timeout: 60_000 }, async () => {
    const db = await createChaosDatabase("starve");
    const app = new App({ connector: new PgConnector({ connectionString: db.url }), logger: silentLogger });
    let child: Child | undefined;
    try {
      await app.open();
      child = spawnWorker(db.url, { worker: { concurrency: 1, heartbeatInterval: 500 }, poolMax: 1 });
      await child.waitForOutput("ready", 60_000);
      const id = await app.configureTask("hold", { allowUnknown: true }).defer({ ms: 8000 });
      let maxHeartbeatAge = 0;
      let seenStalled = false;
      await until(
        async () => {
          const [w] = await app.connector.query<{ age: number }>(
            "SELECT extract(epoch FROM now() - last_heartbeat_at)::float8 AS age FROM proc.workers",
          );
          maxHeartbeatAge = Math.max(maxHeartbeatAge, w?.age ?? 0);
          // 3 s = 6 heartbeat intervals: what a tuned-down stalled check would use.
          if ((await app.jobManager.getStalledJobs({ heartbeatSeconds: 3 })).length) seenStalled = true;
          return (await app.jobManager.getJob(id))?.status === "succeeded";
        },
        { timeoutMs: 40_000, intervalMs: 250, what: "the held job to complete" },
      );
      console.log(
        `starved heartbeat: an 8 s task on a 1-connection pool; oldest heartbeat seen ${maxHeartbeatAge.toFixed(2)} s`,
      );
      expect(seenStalled, "the live worker's running job was reported stalled").toBe(false);
      expect(maxHeartbeatAge).toBeLessThan(3);
    } finally {
      if (child && !child.exited) child.proc.kill("SIGKILL");
      await child?.exit;
      await app.close();
      await db.drop();
    }
  });
});
