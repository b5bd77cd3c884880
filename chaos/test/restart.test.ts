/**
 * Database restart: PostgreSQL itself is restarted in the middle of a drain by 2 worker
 * processes. No worker exits, every job ends `succeeded` (each run once, except jobs
 * recovered as stalled, which are counted), and LISTEN resumes: afterwards a new job
 * starts within ~1 s although the workers poll only every 60 s.
 *
 * It restarts the machine's server, so it runs only with PROC_CHAOS_RESTART=1 (CI).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { describe, expect, it } from "vitest";
import {
  adminUrl,
  type Child,
  createChaosDatabase,
  sleep,
  spawnWorker,
  tail,
  until,
  type WorkerConfig,
} from "../src/harness.js";

const JOBS = 3000;

function restartPostgres(): void {
  const version = readdirSync("/etc/postgresql").sort((a, b) => Number(b) - Number(a))[0];
  if (!version) throw new Error("no cluster under /etc/postgresql");
  execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", "restart"], {
    stdio: "inherit",
  });
}

async function waitForPostgres(url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  await until(() => spawnSync("pg_isready", ["-h", hostname, "-p", port || "5432", "-q"]).status === 0, {
    timeoutMs: 60_000,
    intervalMs: 100,
    what: "pg_isready",
  });
}

describe.runIf(!!adminUrl() && process.env.PROC_CHAOS_RESTART === "1")("database restart (pg)", () => {
  it("drains through a PostgreSQL restart: no worker exits, no job lost or run twice, LISTEN resumes", {
    timeout: 240_000,
  }, async () => {
    const db = await createChaosDatabase("restart");
    const app = new App({ connector: new PgConnector({ connectionString: db.url }), logger: silentLogger });
    const children: Child[] = [];
    const config: WorkerConfig = {
      // Polling every 60 s: only NOTIFY can start a job within a second.
      worker: { concurrency: 5, pollInterval: 60_000, heartbeatInterval: 500 },
      stalled: { heartbeatSeconds: 10, cron: "* * * * * *", maxStalledRetries: 1000 },
      record: "ipc",
    };
    try {
      await app.open();
      for (let i = 0; i < 2; i++) children.push(spawnWorker(db.url, config));
      await Promise.all(children.map((c) => c.waitForOutput("ready", 60_000)));
      const ids = await app
        .configureTask("chaos", { allowUnknown: true })
        .batchDefer(Array.from({ length: JOBS }, () => ({ ms: 10 + Math.floor(Math.random() * 30) })));
      await sleep(1500);

      const before = Date.now();
      restartPostgres();
      await waitForPostgres(adminUrl()!);
      const downMs = Date.now() - before;

      const succeeded = async () =>
        (
          await app.connector.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM proc.jobs WHERE task_name = 'chaos' AND status = 'succeeded'",
          )
        )[0]!.n;
      await until(async () => (await succeeded().catch(() => 0)) === JOBS, {
        timeoutMs: 120_000,
        intervalMs: 250,
        what: "every job to succeed",
      }).catch((error) => {
        throw new Error(`${error.message}\n${tail(children.map((c) => c.output()).join("\n"))}`);
      });
      const drainedMs = Date.now() - before;
      for (const c of children) expect(c.exited, tail(c.output())).toBe(false);

      // LISTEN is back on both workers.
      await Promise.all(children.map((c) => c.waitForOutput("listen_restored", 30_000)));
      const probe = await app.configureTask("chaos", { allowUnknown: true }).defer({ ms: 0 });
      await until(async () => (await app.jobManager.getJob(probe))?.status === "succeeded", {
        timeoutMs: 10_000,
        what: "the probe job",
      });
      const job = (await app.jobManager.getJob(probe))!;
      const startMs = job.startedAt!.getTime() - job.createdAt.getTime();

      const runs = new Map<number, number>();
      for (const c of children)
        for (const m of c.messages as Array<{ t: string; id: number }>)
          if (m.t === "exec") runs.set(m.id, (runs.get(m.id) ?? 0) + 1);
      const jobs = await app.connector.query<{ id: string; stalled: number; released: boolean }>(
        `SELECT id, stalled_count AS stalled, events @> '[{"type": "released"}]' AS released
           FROM proc.jobs WHERE task_name = 'chaos'`,
      );
      const recovered = jobs.filter((j) => j.stalled > 0).map((j) => Number(j.id));
      const released = jobs.filter((j) => j.released).length;
      const twice = ids.filter((id) => (runs.get(id) ?? 0) > 1);
      const never = ids.filter((id) => !runs.has(id));
      console.log(
        `database restart: ${JSON.stringify({
          jobs: JOBS,
          restartToReadyMs: downMs,
          restartToDrainedMs: drainedMs,
          runTwice: twice.length,
          recoveredAsStalled: recovered.length,
          releasedAfterLostFetch: released,
          probeStartAfterDeferMs: startMs,
        })}`,
      );
      expect(never).toEqual([]);
      // A job runs twice only if it was recovered as stalled.
      expect(twice.filter((id) => !recovered.includes(id))).toEqual([]);
      expect(startMs).toBeLessThan(1500);

      for (const c of children) c.proc.kill("SIGTERM");
      for (const c of children) expect((await c.exit).code, tail(c.output())).toBe(0);
    } finally {
      for (const c of children) if (!c.exited) c.proc.kill("SIGKILL");
      await Promise.all(children.map((c) => c.exit));
      await app.close();
      await db.drop();
    }
  });
});
