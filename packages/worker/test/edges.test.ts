// Edge cases of issue 11: each test names the defect it guards. They go through the
// public API (defer, configure, Worker, app.jobManager) and use SQL only for setup.
import { createRequire } from "node:module";
import type { App, Job, JobStatus, NewJob } from "@proc/core";
import {
  type LogRecord,
  type TestApp,
  backends,
  claimOnDeadWorker,
  createTestApp,
  recordingLogger,
  waitFor,
} from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Worker, type WorkerOptions } from "../src/index.js";

/** The part of a raw node-postgres Client these tests use (a user's own connection). */
interface RawPgClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
  end(): Promise<void>;
}
// `pg` is not a dependency of this package: load the copy @proc/pg-connector uses.
const requirePg = createRequire(createRequire(import.meta.url).resolve("@proc/pg-connector/package.json"));
const newPgClient = (connectionString: string): RawPgClient => {
  const pg = requirePg("pg") as { Client: new (config: { connectionString: string }) => RawPgClient };
  return new pg.Client({ connectionString });
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe.each(backends())("worker edge cases (issue 11) on %s", (backend) => {
  let t: TestApp;
  let app: App;
  const workers: Worker[] = [];
  const clients: RawPgClient[] = [];

  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
  });

  afterEach(async () => {
    // A user transaction left open would hold up the workers' stop: end it first.
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
    // No test leaves a worker running.
    await Promise.all(workers.splice(0).map((w) => w.stopNow()));
    await t.dispose();
  });

  function start(options: WorkerOptions = {}): { worker: Worker; done: Promise<void> } {
    const worker = new Worker(app, { handleSignals: false, pollInterval: 200, ...options });
    workers.push(worker);
    return { worker, done: worker.run() };
  }

  const job = async (id: number): Promise<Job> => (await app.jobManager.getJob(id))!;

  /**
   * Wait until the jobs reach these statuses; on timeout, fail showing the statuses
   * they have (a clearer message than a bare timeout).
   */
  async function expectStatuses(
    expected: Record<string, [id: number, status: JobStatus]>,
    timeoutMs = 10_000,
  ): Promise<void> {
    const read = async () =>
      Object.fromEntries(
        await Promise.all(
          Object.entries(expected).map(async ([name, [id]]) => [name, (await job(id)).status] as const),
        ),
      );
    const want = Object.fromEntries(Object.entries(expected).map(([name, [, status]]) => [name, status]));
    const reached = await waitFor(
      async () => {
        const now = await read();
        return Object.keys(want).every((k) => now[k] === want[k]);
      },
      { timeoutMs },
    ).catch(() => false);
    if (!reached) expect(await read(), `statuses after ${timeoutMs} ms`).toEqual(want);
  }

  /** Collects unhandled rejections and uncaught exceptions while `fn` runs. */
  async function catchingCrashes(fn: () => Promise<void>): Promise<unknown[]> {
    const crashes: unknown[] = [];
    const onCrash = (error: unknown) => crashes.push(error);
    process.on("unhandledRejection", onCrash);
    process.on("uncaughtException", onCrash);
    try {
      await fn();
    } finally {
      process.off("unhandledRejection", onCrash);
      process.off("uncaughtException", onCrash);
    }
    return crashes;
  }

  // ---- Defect 1: poison values wedge the write loop ------------------------------

  describe("defect 1: a value the database refuses does not wedge the worker", () => {
    const poisonErrors: Array<[string, () => Error, RegExp]> = [
      // jsonb refuses \u0000 ("unsupported Unicode escape sequence").
      ["a NUL byte", () => new Error("bad \u0000 byte"), /bad.*byte/s],
      // JSON.stringify writes a lone surrogate as \ud800, which jsonb refuses.
      ["a lone surrogate", () => new Error("bad \ud800 surrogate"), /bad.*surrogate/s],
    ];
    for (const [what, makeError, recognisable] of poisonErrors) {
      it(`a task error holding ${what} ends the job failed, and later jobs still run`, {
        timeout: 60_000,
      }, async () => {
        // Guards defect 1: the error JSON is refused; today the worker retries the write
        // forever, the job stays doing, and it fetches nothing more (later jobs stay todo).
        const poison = app.task({ name: "poison" }, async () => {
          throw makeError();
        });
        const ok = app.task({ name: "ok" }, async () => "fine");
        const id = await poison.defer({});
        start({ concurrency: 1 });
        // Deferred once the poison job's outcome is known (written or not).
        await waitFor(async () => !["todo", "doing"].includes((await job(id)).status), {
          timeoutMs: 8000,
        }).catch(() => {});
        const later = await ok.defer({});
        await expectStatuses({ poison: [id, "failed"], later: [later, "succeeded"] }, 8000);
        const failed = await job(id);
        expect(failed.attempts).toBe(1);
        expect(failed.error?.message).toMatch(recognisable);
      });
    }

    const refusedDecisions: Array<[string, () => { queue?: string; priority?: number; at?: Date }]> = [
      // queue_name has CHECK (length BETWEEN 1 AND 128).
      ['{ queue: "" }', () => ({ queue: "" })],
      // priority is an integer column: 2 ** 40 is out of range.
      ["{ priority: 2 ** 40 }", () => ({ priority: 2 ** 40 })],
      // An invalid date: today retry.at.toISOString() throws a RangeError out of the
      // worker's failure handling, an unhandled rejection that crashes the process.
      ["{ at: new Date(NaN) }", () => ({ at: new Date(Number.NaN) })],
    ];
    for (const [what, decision] of refusedDecisions) {
      it(`a retry decision the database refuses (${what}) fails the job without retry, and the worker goes on`, {
        timeout: 60_000,
      }, async () => {
        // Guards defect 1 (retry decisions): the job must end failed, not retried, and
        // the worker must neither wedge nor crash.
        let runs = 0;
        const poison = app.task({ name: "bad_retry", retry: decision }, async () => {
          runs++;
          throw new Error("boom");
        });
        const ok = app.task({ name: "ok" }, async () => "fine");
        let seen: Record<string, unknown> = {};
        const crashes = await catchingCrashes(async () => {
          const id = await poison.defer({});
          const { worker } = start({ concurrency: 1 });
          await waitFor(async () => (await job(id)).status === "failed", { timeoutMs: 8000 }).catch(() => {});
          const later = await ok.defer({});
          await waitFor(async () => (await job(later)).status === "succeeded", { timeoutMs: 8000 }).catch(
            () => {},
          );
          const j = await job(id);
          seen = {
            status: j.status,
            attempts: j.attempts,
            runs,
            later: (await job(later)).status,
            workerState: worker.state,
          };
        });
        expect({ ...seen, crashes: crashes.map(String) }).toEqual({
          status: "failed",
          attempts: 1,
          runs: 1,
          later: "succeeded",
          workerState: "running",
          crashes: [],
        });
      });
    }

    it("after stop, the writer stops retrying outcomes it could not write", { timeout: 60_000 }, async () => {
      // Guards defect 1 (stop): today, once stop() has given up waiting for a write
      // (finish_timeout) and closed the worker's connections, the write loop keeps
      // retrying forever on its backoff timers, so an embedding process never exits.
      // The database refuses to mark jobs succeeded as if the connection failed on
      // every write (SQLSTATE 08006), so the outcome can never be written.
      await app.connector.query(`
        CREATE FUNCTION proc.refuse_success() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'test: writes refused' USING ERRCODE = '08006'; END $$;
        CREATE TRIGGER refuse_success BEFORE UPDATE ON proc.jobs
          FOR EACH ROW WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION proc.refuse_success();`);
      const records: LogRecord[] = [];
      const quick = app.task({ name: "quick" }, async () => "ok");
      await quick.defer({});
      const { worker, done } = start({ concurrency: 1, prefetch: 0, logger: recordingLogger(records) });
      await new Promise<void>((resolve) =>
        worker.on("worker:error", ({ action }) => action === "finish" && resolve()),
      );
      const stopped = await Promise.race([
        worker.stop().then(() => done.then(() => true)),
        sleep(30_000).then(() => false),
      ]);
      expect(stopped, "run() resolved after stop()").toBe(true);
      const finishErrors = () => records.filter((r) => r.action === "finish_error").length;
      const atStop = finishErrors();
      // Longer than the write loop's largest backoff (10 s): a live loop writes a line.
      await sleep(11_000);
      expect(finishErrors(), "finish_error lines logged after stop() resolved").toBe(atStop);
    });
  });

  // ---- Defect 3: prefetched jobs handed back at stop with a queueing-lock conflict --

  it("gives back prefetched jobs on stop even when a newer todo job holds one's queueing lock", async () => {
    // Guards defect 3. A worker with one slot learns that jobs are short (the warm job),
    // so it prefetches: while A runs (held by a gate), B (queueing lock "q") and B2 are
    // claimed into its buffer. Then C, a todo job with queueing lock "q", is deferred
    // (allowed: the lock only guards todo jobs and B is doing) into a queue the worker
    // does not serve, so it stays todo. On stop, giving B back collides with C; today
    // the whole release fails and B and B2 stay doing on a worker row that is gone
    // (later recovered as stalled, stalledCount + 1, though they never ran).
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const warm = app.task({ name: "warm" }, async () => {});
    const gated = app.task({ name: "gated" }, async ({ name }: { name: string }) => {
      ran.push(name);
      await gate;
    });
    const warmId = await warm.defer({});
    const { worker } = start({ concurrency: 1, queues: ["default"] });
    await waitFor(async () => (await job(warmId)).status === "succeeded");
    const a = await gated.defer({ name: "A" });
    await waitFor(() => ran.includes("A"));
    const b = await gated.configure({ queueingLock: "q" }).defer({ name: "B" });
    const b2 = await gated.defer({ name: "B2" });
    await waitFor(async () => (await job(b)).status === "doing" && (await job(b2)).status === "doing", {
      what: "B and B2 to be prefetched",
    });
    expect(ran).toEqual(["A"]); // claimed, not started
    const c = await gated.configure({ queueingLock: "q", queue: "other" }).defer({ name: "C" });
    const stopped = worker.stop();
    release();
    await stopped;

    expect(ran).toEqual(["A"]);
    const jobs = await app.jobManager.listJobs({ task: "gated" });
    expect(jobs.filter((j) => j.status === "doing").map((j) => j.args)).toEqual([]);
    expect(await job(a)).toMatchObject({ status: "succeeded" });
    expect(await job(b)).toMatchObject({ status: "todo", stalledCount: 0, attempts: 0 });
    expect(await job(b2)).toMatchObject({ status: "todo", stalledCount: 0, attempts: 0 });
    expect(await job(c)).toMatchObject({ status: "todo", queueingLock: "q" });
  });

  // ---- Defect 4: an abort request lost by a stalled retry --------------------------

  it("keeps an abort request through a stalled retry: the job ends aborted", async () => {
    // Guards defect 4: a doing job of a dead worker is asked to abort, then recovered
    // as stalled recovery does (retryJob with the doing Job). Today the retry puts it
    // back to todo and clears the request.
    const task = app.task({ name: "abortable" }, async () => "ran");
    const id = await task.defer({});
    await claimOnDeadWorker(app, id);
    expect(await app.jobManager.cancelJob(id, { abort: true })).toBe("doing");
    const stalled = await app.jobManager.getStalledJobs({ heartbeatSeconds: 30 });
    expect(stalled.map((j) => j.id)).toEqual([id]);
    await app.jobManager.retryJob(stalled[0]!);
    expect((await job(id)).status).toBe("aborted");
  });

  it("does not run again a job whose abort was requested before its stalled retry", async () => {
    // Guards defect 4, end to end: after the stalled retry, a worker must not run it.
    let ran = false;
    const task = app.task({ name: "abortable" }, async () => {
      ran = true;
      return "ran";
    });
    const id = await task.defer({});
    await claimOnDeadWorker(app, id);
    await app.jobManager.cancelJob(id, { abort: true });
    for (const stalled of await app.jobManager.getStalledJobs({ heartbeatSeconds: 30 }))
      await app.jobManager.retryJob(stalled);
    await start({ wait: false }).done;
    expect({ ran, status: (await job(id)).status }).toEqual({ ran: false, status: "aborted" });
  });

  // ---- Defect 5: an immediate job deferred with a future one waits for the poll ----

  it("starts an immediate job deferred in one statement with a future one, by NOTIFY", async () => {
    // Guards defect 5: the statement's NOTIFY carried the future job's time (bool_and
    // skips the immediate job's NULL schedule), so an idle worker armed a timer for
    // an hour ahead and left the immediate job to the next poll (60 s here). On
    // PGlite, LISTEN/NOTIFY works within the process, which is all this needs.
    let started = false;
    app.task({ name: "now_or_later" }, async () => {
      started = true;
    });
    start({ pollInterval: 60_000 });
    await sleep(300); // the worker has done its first fetch and waits
    const base: NewJob = {
      task: "now_or_later",
      queue: "default",
      priority: 0,
      lock: null,
      queueingLock: null,
      args: {},
      scheduledAt: null,
    };
    const [now, later] = await app.jobManager.deferJobs([
      base,
      { ...base, scheduledAt: new Date(Date.now() + 3_600_000) },
    ]);
    await waitFor(() => started, { timeoutMs: 10_000, what: "the immediate job to start" });
    expect((await job(now!)).status).not.toBe("todo");
    expect((await job(later!)).status).toBe("todo");
  });

  // ---- Defect 6: a user's open transaction holds up every outcome of a worker ------

  // Real Postgres only: it takes two sessions (the user's open transaction and the
  // worker's), and PGlite is a single session.
  it.skipIf(backend !== "pg")(
    "records other jobs' outcomes while a user transaction holds a queueing lock a retry needs",
    { timeout: 60_000 },
    async () => {
      // Guards defect 6: a job of "digest" (queueing lock "digest:1") runs; a request
      // handler defers another "digest:1" job inside a transaction it keeps open
      // (allowed: the running job is doing). The running job then fails with a retry,
      // which needs the queueing-lock index entry the open transaction holds: today
      // that write waits for the transaction, and every later outcome of the worker
      // waits behind it.
      let failNow!: () => void;
      const failGate = new Promise<void>((r) => {
        failNow = r;
      });
      const digestRuns: string[] = [];
      let firstId = 0;
      const digest = app.task(
        { name: "digest", retry: { maxAttempts: 2 } },
        async ({ n }: { n: number }, ctx) => {
          digestRuns.push(`${n}#${ctx.job.attempts}`);
          if (ctx.job.id === firstId && ctx.job.attempts === 1) {
            await failGate;
            throw new Error("digest failed");
          }
          return "digested";
        },
      );
      const other = app.task({ name: "other" }, async () => "done");
      firstId = await digest.configure({ queueingLock: "digest:1" }).defer({ n: 1 });
      const { worker } = start({ concurrency: 4, heartbeatInterval: 200 });
      await waitFor(async () => (await job(firstId)).status === "doing");

      const client = newPgClient(t.db.url!);
      clients.push(client);
      await client.connect();
      await client.query("BEGIN");
      const userId = await digest
        .configure({ queueingLock: "digest:1" })
        .defer({ n: 2 }, { connection: client });

      const retried = new Promise<void>((resolve) => worker.on("job:retry", () => resolve()));
      failNow();
      await retried; // its outcome (a retry) is now being written
      const others = await other.batchDefer([{}, {}, {}]);

      // While the user transaction is still open:
      const heartbeat = async () => (await app.jobManager.listWorkers())[0]?.lastHeartbeatAt.getTime() ?? 0;
      const othersDone = await waitFor(
        async () => (await Promise.all(others.map(job))).every((j) => j.status === "succeeded"),
        { timeoutMs: 10_000 },
      ).catch(() => false);
      const beat = await heartbeat();
      const heartbeatAdvances = await waitFor(async () => (await heartbeat()) > beat, {
        timeoutMs: 5000,
      }).catch(() => false);
      const digestRecorded = await waitFor(async () => (await job(firstId)).status !== "doing", {
        timeoutMs: 5000,
      }).catch(() => false);
      const seen = {
        othersSucceeded: othersDone,
        otherStatuses: (await Promise.all(others.map(job))).map((j) => j.status),
        heartbeatAdvances,
        failedJobRetryRecorded: digestRecorded,
      };

      // Then the request commits: nothing is lost, both digest jobs run.
      await client.query("COMMIT");
      const allDone = await waitFor(
        async () =>
          (await Promise.all([firstId, userId, ...others].map(job))).every((j) => j.status === "succeeded"),
        { timeoutMs: 15_000 },
      ).catch(() => false);
      const final = (await Promise.all([firstId, userId, ...others].map(job))).map((j) => j.status);

      expect(seen).toEqual({
        othersSucceeded: true,
        otherStatuses: ["succeeded", "succeeded", "succeeded"],
        heartbeatAdvances: true,
        failedJobRetryRecorded: true,
      });
      expect({ allDone, final }).toEqual({ allDone: true, final: Array(5).fill("succeeded") });
      expect(digestRuns.sort()).toEqual(["1#1", "1#2", "2#1"]);
    },
  );

  // ---- Defect 7: a retried job of a lock is overtaken by later jobs of its lock ----

  it("runs a job retried with a wait before later jobs of its lock", async () => {
    // Guards defect 7: a job retried with a wait keeps its place in its lock. Today its
    // future scheduled_at makes it look like a job deferred for later, which does not
    // block the lock, so J2 runs before J1's retry.
    const order: string[] = [];
    const step = app.task(
      { name: "step", retry: { maxAttempts: 2, wait: 1500 } },
      async ({ name }: { name: string }, ctx) => {
        order.push(`${name}#${ctx.job.attempts}`);
        if (name === "J1" && ctx.job.attempts === 1) throw new Error("first try fails");
      },
    );
    const j1 = await step.configure({ lock: "L" }).defer({ name: "J1" });
    const j2 = await step.configure({ lock: "L" }).defer({ name: "J2" });
    start({ concurrency: 4 });
    await expectStatuses({ J1: [j1, "succeeded"], J2: [j2, "succeeded"] }, 15_000);
    expect(order).toEqual(["J1#1", "J1#2", "J2#1"]);
  });

  it("still runs ready jobs of a lock whose other job was deferred for later", async () => {
    // Regression guard for the fix of defect 7: a job *deferred* with a future
    // schedule does not block ready jobs of its lock.
    const ran: string[] = [];
    const step = app.task({ name: "step" }, async ({ name }: { name: string }) => {
      ran.push(name);
    });
    const j0 = await step.configure({ lock: "L", scheduleIn: { hours: 1 } }).defer({ name: "J0" });
    const j3 = await step.configure({ lock: "L" }).defer({ name: "J3" });
    start({ concurrency: 2 });
    await expectStatuses({ J3: [j3, "succeeded"] });
    expect(ran).toEqual(["J3"]);
    expect((await job(j0)).status).toBe("todo");
  });
});
