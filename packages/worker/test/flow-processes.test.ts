// Flow control, exact across processes: 4 worker processes × concurrency 20, prefetch on,
// against real Postgres. Each run records its start and end by the database's clock
// (flow_runs); the checks sweep those intervals. Nothing here asserts on speed.
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { App, type JobOptions, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { type TestDatabase, createTestDatabase, pgUrl, waitFor } from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const tsx = createRequire(import.meta.url).resolve("tsx");
const script = fileURLToPath(new URL("./fixtures/worker-process.ts", import.meta.url));
const PROCESSES = 4;
const CONCURRENCY = 20;

interface Run {
  job_id: string;
  key: string | null;
  queue: string;
  started: number;
  ended: number;
}

/** The most runs of one group overlapping at any instant ([start, end), ends first on ties). */
function maxOverlap(runs: readonly Run[], group: (r: Run) => string): Map<string, number> {
  const events = new Map<string, Array<[number, number]>>();
  for (const r of runs) {
    const list = events.get(group(r)) ?? [];
    list.push([r.started, 1], [r.ended, -1]);
    events.set(group(r), list);
  }
  const result = new Map<string, number>();
  for (const [key, list] of events) {
    list.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let max = 0;
    for (const [, delta] of list) {
      now += delta;
      max = Math.max(max, now);
    }
    result.set(key, max);
  }
  return result;
}

describe.skipIf(!pgUrl())("flow control across 4 worker processes × concurrency 20 (pg)", () => {
  let db: TestDatabase;
  let app: App;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    db = await createTestDatabase("pg");
    app = new App({
      connector: new PgConnector({ connectionString: db.url!, poolConfig: { max: 12 } }),
      logger: silentLogger,
    });
    await app.open();
    await app.connector.query(
      "CREATE TABLE flow_runs (job_id bigint, run int, key text, queue text, pid int, started_at timestamptz, ended_at timestamptz)",
    );
  });

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
    await app.close();
    await db.drop();
  });

  async function startWorkers(options: Record<string, unknown> = {}): Promise<void> {
    const ready: Promise<unknown>[] = [];
    for (let i = 0; i < PROCESSES; i++) {
      const proc = spawn(process.execPath, ["--conditions=@proc/source", "--import", tsx, script], {
        env: {
          ...process.env,
          DATABASE_URL: db.url!,
          WORKER_OPTIONS: JSON.stringify({ concurrency: CONCURRENCY, pollInterval: 2000, ...options }),
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(proc);
      let out = "";
      proc.stdout!.on("data", (d) => (out += d));
      proc.stderr!.on("data", (d) => (out += d));
      ready.push(waitFor(() => out.includes("ready"), { timeoutMs: 30_000, what: `worker ready: ${out}` }));
    }
    await Promise.all(ready);
  }

  /** Rows of a query that returns at least one. */
  const rows = async <R>(text: string, params: unknown[] = []): Promise<[R, ...R[]]> => {
    const result = await app.connector.query<R>(text, params);
    expect(result.length).toBeGreaterThan(0);
    return result as [R, ...R[]];
  };
  const flow = (options: JobOptions) => app.configureTask("flow", { allowUnknown: true, ...options });
  const drained = () =>
    waitFor(
      async () => (await app.jobManager.listJobs({ status: ["todo", "doing"], limit: 1 })).length === 0,
      {
        timeoutMs: 120_000,
        intervalMs: 200,
        what: "the queue to drain",
      },
    );
  async function runs(): Promise<Run[]> {
    // Milliseconds with the microseconds the database keeps.
    const rows = await app.connector.query<Run & { started: string; ended: string | null }>(
      `SELECT job_id, key, queue, extract(epoch FROM started_at) * 1000 AS started,
              extract(epoch FROM ended_at) * 1000 AS ended
       FROM flow_runs ORDER BY started_at`,
    );
    return rows.map((r) => {
      expect(r.ended, `run of job ${r.job_id} ended`).not.toBeNull();
      return { ...r, started: Number(r.started), ended: Number(r.ended) };
    });
  }
  async function exactlyOnce(ids: readonly number[]): Promise<void> {
    const rows = await app.connector.query<{ job_id: string; n: number }>(
      "SELECT job_id, count(*)::int AS n FROM flow_runs GROUP BY job_id",
    );
    expect(rows.length).toBe(ids.length);
    expect(rows.every((r) => r.n === 1)).toBe(true);
    const statuses = await app.connector.query<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM "${app.schema}".jobs GROUP BY status`,
    );
    expect(statuses).toEqual([{ status: "succeeded", n: ids.length }]);
  }

  it("no instant has more runs of a key than its limit, or of a queue than its maxRunning; no key starves", async () => {
    // 1,500 jobs over 30 keys (limits 1 to 3), interleaved, plus one key with a backlog
    // of 300 deferred first, and a queue limited to 7 at once.
    const ids: number[] = [];
    ids.push(
      ...(await flow({ concurrencyKey: "big", concurrencyLimit: 2 }).batchDefer(
        Array.from({ length: 300 }, () => ({ ms: 10 })),
      )),
    );
    for (let k = 0; k < 30; k++) {
      const limit = (k % 3) + 1;
      ids.push(
        ...(await flow({ concurrencyKey: `k${k}`, concurrencyLimit: limit }).batchDefer(
          Array.from({ length: 40 }, () => ({ ms: 5 + (k % 7) * 3 })),
        )),
      );
    }
    await app.jobManager.setQueueLimits("narrow", { maxRunning: 7 });
    ids.push(
      ...(await flow({ queue: "narrow" }).batchDefer(Array.from({ length: 300 }, () => ({ ms: 10 })))),
    );
    await startWorkers();
    await drained();
    const all = await runs();
    await exactlyOnce(ids);

    const perKey = maxOverlap(
      all.filter((r) => r.key !== null),
      (r) => r.key!,
    );
    expect(perKey.get("big")).toBeLessThanOrEqual(2);
    for (let k = 0; k < 30; k++) expect(perKey.get(`k${k}`)).toBeLessThanOrEqual((k % 3) + 1);
    const narrow = maxOverlap(
      all.filter((r) => r.queue === "narrow"),
      (r) => r.queue,
    );
    expect(narrow.get("narrow")).toBeLessThanOrEqual(7);
    // The limits were reached, so the test could have failed: more than one run of a key
    // limited to 3, and of "big", did overlap.
    expect(perKey.get("k2")).toBeGreaterThan(1);
    expect(perKey.get("big")).toBe(2);
    // Fairness (oldest first among the jobs that may start): "big"'s backlog, deferred
    // first, does not hold the other keys back: every other key has finished while "big"
    // still has jobs to run.
    const lastEnd = (pred: (r: Run) => boolean) => Math.max(...all.filter(pred).map((r) => r.ended));
    expect(lastEnd((r) => r.key !== null && r.key !== "big")).toBeLessThan(lastEnd((r) => r.key === "big"));
  }, 180_000);

  it("starts per window never exceed a key's or a queue's rate, by the database's claim times", async () => {
    const per = 400;
    const ids = [
      ...(await flow({ rateLimit: { key: "api", max: 5, per } }).batchDefer(
        Array.from({ length: 40 }, () => ({})),
      )),
      ...(await flow({ queue: "paced" }).batchDefer(Array.from({ length: 24 }, () => ({})))),
    ];
    await app.jobManager.setQueueLimits("paced", { rateLimit: { max: 3, per } });
    await startWorkers();
    await drained();
    await exactlyOnce(ids);
    const starts = async (where: string) =>
      (
        await app.connector.query<{ ms: number }>(
          `SELECT extract(epoch FROM started_at) * 1000 AS ms FROM "${app.schema}".jobs WHERE ${where} ORDER BY started_at`,
        )
      ).map((r) => Number(r.ms));
    const worst = (times: number[], max: number) => {
      // The shortest span covering max + 1 consecutive starts: >= per when the rate held.
      let shortest = Number.POSITIVE_INFINITY;
      for (let i = 0; i + max < times.length; i++) shortest = Math.min(shortest, times[i + max]! - times[i]!);
      return shortest;
    };
    const api = await starts("rate_key = 'api'");
    expect(api).toHaveLength(40);
    expect(worst(api, 5)).toBeGreaterThanOrEqual(per);
    const paced = await starts("queue_name = 'paced'");
    expect(worst(paced, 3)).toBeGreaterThanOrEqual(per);
    // Held-back jobs start as the window opens, not a poll later (poll: 2 s): 40 jobs at
    // 5 per 400 ms take about 3.2 s, far less than 8 polls would.
    expect(api.at(-1)! - api[0]!).toBeLessThan((40 / 5) * 2000);
    // And they were never counted as attempts.
    const [{ max }] = await rows<{ max: number }>(
      `SELECT max(attempts)::int AS max FROM "${app.schema}".jobs`,
    );
    expect(max).toBe(1);
  }, 180_000);

  it("a pause stops starts within 1 s and loses nothing; a resume drains the rest", async () => {
    const ids = await flow({ queue: "emails" }).batchDefer(Array.from({ length: 3000 }, () => ({ ms: 10 })));
    await startWorkers();
    await waitFor(async () => {
      const [{ n }] = await rows<{ n: number }>("SELECT count(*)::int AS n FROM flow_runs");
      return n >= 200;
    });
    await app.jobManager.pauseQueue("emails");
    const [{ paused_at }] = await rows<{ paused_at: Date }>(
      `SELECT paused_at FROM "${app.schema}".paused_queues`,
    );
    await new Promise((r) => setTimeout(r, 1500));
    const late = await app.connector.query(
      "SELECT job_id FROM flow_runs WHERE started_at > $1::timestamptz + interval '1 second'",
      [paused_at],
    );
    expect(late).toEqual([]);
    const [{ n: before }] = await rows<{ n: number }>("SELECT count(*)::int AS n FROM flow_runs");
    expect(before).toBeLessThan(3000);
    await app.jobManager.resumeQueue("emails");
    await drained();
    await exactlyOnce(ids);
  }, 180_000);

  it("expiry and retention never touch a doing job", async () => {
    await startWorkers({ prefetch: 0 });
    // Slow jobs that expire while they run, and a sweep and a retention pass meanwhile.
    const running = await flow({ expireIn: 1500 }).batchDefer(
      Array.from({ length: 40 }, () => ({ ms: 3000 })),
    );
    // More jobs than slots: the ones still waiting at their expiry end cancelled.
    const waiting = await flow({ expireIn: 1500 }).batchDefer(
      Array.from({ length: 200 }, () => ({ ms: 3000 })),
    );
    await new Promise((r) => setTimeout(r, 2000));
    await app.jobManager.expireJobs();
    await app.jobManager.deleteOldJobs({ olderThanHours: 0, statuses: ["succeeded", "failed", "cancelled"] });
    await drained();
    const statuses = await app.connector.query<{ id: string; status: string }>(
      `SELECT id, status FROM "${app.schema}".jobs ORDER BY id`,
    );
    const ran = await app.connector.query<{ job_id: string }>("SELECT job_id FROM flow_runs");
    const ranIds = new Set(ran.map((r) => Number(r.job_id)));
    // Every job that started ran to success; none that ran was cancelled or deleted.
    for (const id of ranIds) expect(statuses.find((s) => Number(s.id) === id)?.status).toBe("succeeded");
    expect(ranIds.size).toBeGreaterThanOrEqual(running.length);
    // The rest expired, unrun: cancelled (or deleted by the retention pass).
    const unrun = [...running, ...waiting].filter((id) => !ranIds.has(id));
    expect(unrun.length).toBeGreaterThan(0);
    for (const id of unrun)
      expect(["cancelled", undefined]).toContain(statuses.find((s) => Number(s.id) === id)?.status);
  }, 180_000);
});

describe.skipIf(!pgUrl())("queueing-lock modes under concurrent defers from many clients (pg)", () => {
  let db: TestDatabase;
  const apps: App[] = [];

  beforeEach(async () => {
    db = await createTestDatabase("pg");
    for (let i = 0; i < 8; i++) {
      const app = new App({
        connector: new PgConnector({ connectionString: db.url! }),
        logger: silentLogger,
      });
      await app.open();
      apps.push(app);
    }
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await db.drop();
  });

  it("ignore, replace and debounce give exactly one waiting job per queueing lock", async () => {
    const defer = (app: App, mode: "ignore" | "replace", key: number, seq: number) =>
      app
        .configureTask("t", {
          allowUnknown: true,
          queueingLock: `${mode}:${key}`,
          onConflict: mode,
          ...(mode === "replace" ? { scheduleIn: { seconds: 30 } } : {}),
        })
        .defer({ seq });
    // 8 clients × 25 defers × 2 modes, over 5 queueing locks each, all at once.
    const results = await Promise.all(
      apps.flatMap((app, c) =>
        Array.from({ length: 25 }, (_, i) => [
          defer(app, "ignore", i % 5, c * 100 + i).then((id) => ({ mode: "ignore", key: i % 5, id })),
          defer(app, "replace", i % 5, c * 100 + i).then((id) => ({ mode: "replace", key: i % 5, id })),
        ]).flat(),
      ),
    );
    const jobs = await apps[0]!.jobManager.listJobs({ limit: 1000 });
    expect(jobs).toHaveLength(10);
    for (const mode of ["ignore", "replace"])
      for (let key = 0; key < 5; key++) {
        const ids = new Set(results.filter((r) => r.mode === mode && r.key === key).map((r) => r.id));
        expect(ids.size, `${mode}:${key} returned one id`).toBe(1);
        const job = jobs.find((j) => j.queueingLock === `${mode}:${key}`)!;
        expect(job.id).toBe([...ids][0]);
        expect(job.status).toBe("todo");
        // replace: one "replaced" event per later defer (a debounce: still scheduled later).
        if (mode === "replace") {
          expect(job.events.filter((e) => e.type === "replaced")).toHaveLength(40 - 1);
          expect(job.scheduledAt!.getTime()).toBeGreaterThan(Date.now() + 20_000);
        } else expect(job.events.map((e) => e.type)).toEqual(["deferred"]);
      }
  }, 60_000);
});
