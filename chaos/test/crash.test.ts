/**
 * Crash chaos: 4 worker processes drain 5,000 jobs while, for 30 s, a random one is
 * killed with SIGKILL every ~2 s and replaced. Every job must end `succeeded`; the only
 * jobs that run twice are jobs that were running on a killed worker.
 */
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { describe, expect, it } from "vitest";
import {
  adminUrl,
  type Child,
  type ChaosDatabase,
  createChaosDatabase,
  percentile,
  sleep,
  spawnWorker,
  tail,
  until,
  type WorkerConfig,
} from "../src/harness.js";

const JOBS = 5000;
const WORKERS = 4;
const CHAOS_MS = 30_000;

const WORKER: WorkerConfig = {
  worker: { concurrency: 5, heartbeatInterval: 500, pollInterval: 1000 },
  // Tuned down from 30 s / every 10 s so that recovery happens within the test. Stalled
  // jobs are always retried here (a job may be unlucky several times in a row).
  stalled: { heartbeatSeconds: 3, cron: "* * * * * *", maxStalledRetries: 1000 },
  record: "table",
};

describe.skipIf(!adminUrl())("crash chaos (SIGKILL, pg)", () => {
  it("loses no job and re-runs only the jobs of killed workers", { timeout: 300_000 }, async () => {
    const db: ChaosDatabase = await createChaosDatabase("crash");
    const app = new App({ connector: new PgConnector({ connectionString: db.url }), logger: silentLogger });
    const slots: Child[] = [];
    const all: Child[] = [];
    const killed = new Map<number, number>(); // pid → time of the kill
    try {
      await app.open();
      await app.connector.query(
        `CREATE TABLE executions (seq bigserial PRIMARY KEY, job_id bigint NOT NULL, pid int NOT NULL,
           attempt int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      );
      const start = () => {
        const child = spawnWorker(db.url, WORKER);
        all.push(child);
        return child;
      };
      for (let i = 0; i < WORKERS; i++) slots.push(start());
      await Promise.all(slots.map((c) => c.waitForOutput("ready", 60_000)));

      const deferrer = app.configureTask("chaos", { allowUnknown: true });
      for (let i = 0; i < JOBS; i += 1000)
        await deferrer.batchDefer(
          Array.from({ length: Math.min(1000, JOBS - i) }, () => ({
            ms: 20 + Math.floor(Math.random() * 180),
          })),
        );

      const chaosEnd = Date.now() + CHAOS_MS;
      while (Date.now() < chaosEnd) {
        await sleep(1500 + Math.random() * 1000);
        const i = Math.floor(Math.random() * slots.length);
        const victim = slots[i]!;
        victim.proc.kill("SIGKILL");
        killed.set(victim.pid, Date.now());
        slots[i] = start();
      }

      const counts = async () =>
        Object.fromEntries(
          (
            await app.connector.query<{ status: string; n: number }>(
              "SELECT status::text, count(*)::int AS n FROM proc.jobs WHERE task_name = 'chaos' GROUP BY 1",
            )
          ).map((r) => [r.status, r.n]),
        );
      await until(async () => (await counts()).succeeded === JOBS, {
        timeoutMs: 180_000,
        intervalMs: 500,
        what: "every job to succeed",
      }).catch(async (error) => {
        throw new Error(
          `${error.message}: ${JSON.stringify(await counts())}\n${tail(slots.map((c) => c.output()).join("\n"))}`,
        );
      });
      // The survivors never exited on their own.
      for (const child of slots) expect(child.exited, tail(child.output())).toBe(false);

      expect(await counts()).toEqual({ succeeded: JOBS });
      const runs = await app.connector.query<{
        job_id: string;
        pids: number[];
        ats: Date[];
        stalled_count: number;
        released: boolean;
      }>(
        `SELECT e.job_id, array_agg(e.pid ORDER BY e.seq) AS pids, array_agg(e.at ORDER BY e.seq) AS ats,
                j.stalled_count, j.events @> '[{"type": "released"}]' AS released
           FROM executions e JOIN proc.jobs j ON j.id = e.job_id
          GROUP BY e.job_id, j.stalled_count, j.events`,
      );
      // None lost: every job ran (and succeeded, above).
      expect(runs.length).toBe(JOBS);
      const duplicates = runs.filter((r) => r.pids.length > 1);
      const recoveryMs: number[] = [];
      const unexplained: string[] = [];
      for (const r of duplicates) {
        // Every run but the last was cut short by a SIGKILL.
        for (const pid of r.pids.slice(0, -1))
          if (!killed.has(pid)) unexplained.push(`job ${r.job_id}: run by ${pid}, which was not killed`);
        if (!(r.stalled_count >= 1 || r.released))
          unexplained.push(`job ${r.job_id} ran ${r.pids.length} times but was never recovered`);
        if (r.pids.length - 1 > r.stalled_count)
          unexplained.push(`job ${r.job_id} ran ${r.pids.length} times for ${r.stalled_count} recoveries`);
        for (let k = 1; k < r.pids.length; k++) {
          const killedAt = killed.get(r.pids[k - 1]!);
          if (killedAt) recoveryMs.push(new Date(r.ats[k]!).getTime() - killedAt);
        }
      }
      const [stats] = await app.connector.query<{ executions: number; recovered: number; stalled: number }>(
        `SELECT (SELECT count(*)::int FROM executions) AS executions,
                count(*) FILTER (WHERE stalled_count > 0)::int AS recovered,
                coalesce(sum(stalled_count), 0)::int AS stalled
           FROM proc.jobs WHERE task_name = 'chaos'`,
      );
      const report = {
        jobs: JOBS,
        succeeded: (await counts()).succeeded,
        lost: JOBS - runs.length,
        kills: killed.size,
        executions: stats!.executions,
        jobsRunMoreThanOnce: duplicates.length,
        extraExecutions: stats!.executions - JOBS,
        jobsRecoveredAsStalled: stats!.recovered,
        stalledRecoveries: stats!.stalled,
        recoveryMsP50: percentile(recoveryMs, 50),
        recoveryMsMax: recoveryMs.length ? Math.max(...recoveryMs) : null,
      };
      console.log(`crash chaos: ${JSON.stringify(report)}`);
      expect(unexplained).toEqual([]);
      expect(killed.size).toBeGreaterThanOrEqual(10);

      // The survivors stop cleanly. The last one restarted may still be booting (its
      // signal handlers not yet installed, so SIGTERM would simply kill it): wait for it.
      await Promise.all(slots.map((c) => c.waitForOutput("ready", 60_000)));
      for (const child of slots) child.proc.kill("SIGTERM");
      for (const child of slots)
        expect(await child.exit, tail(child.output())).toEqual({ code: 0, signal: null });
    } finally {
      for (const child of all) if (!child.exited) child.proc.kill("SIGKILL");
      await Promise.all(all.map((c) => c.exit));
      await app.close();
      await db.drop();
    }
  });
});
