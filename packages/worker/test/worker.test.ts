import { type App, type Job, type Logger, consoleLogger } from "@proc/core";
import { type TestApp, backends, createTestApp, waitFor } from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { JobTimeoutError, Worker, type WorkerOptions } from "../src/index.js";

describe.each(backends())("Worker on %s", (backend) => {
  let t: TestApp;
  let app: App;
  const workers: Worker[] = [];

  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
  });

  afterEach(async () => {
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

  it("runs jobs, stores results and history, and stops when one-shot finds nothing", async () => {
    const add = app.task({ name: "add" }, async ({ a, b }: { a: number; b: number }) => ({ sum: a + b }));
    const ids = await add.batchDefer([
      { a: 1, b: 2 },
      { a: 3, b: 4 },
    ]);
    const { worker, done } = start({ wait: false, concurrency: 2 });
    await done;
    const [j1, j2] = await Promise.all(ids.map(job));
    expect(j1).toMatchObject({ status: "succeeded", result: { sum: 3 }, attempts: 1, workerId: worker.id });
    expect(j2).toMatchObject({ status: "succeeded", result: { sum: 7 } });
    expect(j1!.events.map((e) => e.type)).toEqual(["deferred", "started", "succeeded"]);
    expect(await app.jobManager.listWorkers()).toEqual([]); // unregistered on stop
  });

  it("runs jobs concurrently up to the limit", async () => {
    let running = 0;
    let peak = 0;
    const slow = app.task({ name: "slow" }, async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 150));
      running--;
    });
    await slow.batchDefer(Array.from({ length: 8 }, () => ({})));
    await start({ wait: false, concurrency: 4 }).done;
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(4);
    expect((await app.jobManager.listJobs({ status: "succeeded" })).length).toBe(8);
  });

  it("runs higher priority first, then FIFO", async () => {
    const order: number[] = [];
    const t1 = app.task({ name: "p" }, async ({ n }: { n: number }) => {
      order.push(n);
    });
    await t1.defer({ n: 1 });
    await t1.configure({ priority: 5 }).defer({ n: 2 });
    await t1.defer({ n: 3 });
    await t1.configure({ priority: 5 }).defer({ n: 4 });
    await t1.configure({ priority: -1 }).defer({ n: 5 });
    await start({ wait: false, concurrency: 1 }).done;
    expect(order).toEqual([2, 4, 1, 3, 5]);
  });

  it("never runs two jobs of one lock at once, and keeps their order", async () => {
    const log: string[] = [];
    const locked = app.task({ name: "locked" }, async ({ n }: { n: number }, ctx) => {
      log.push(`start ${ctx.job.lock} ${n}`);
      await new Promise((r) => setTimeout(r, 30));
      log.push(`end ${ctx.job.lock} ${n}`);
    });
    for (let n = 0; n < 4; n++) await locked.configure({ lock: "A" }).defer({ n });
    for (let n = 0; n < 2; n++) await locked.configure({ lock: "B" }).defer({ n });
    await start({ wait: false, concurrency: 4 }).done;
    const a = log.filter((l) => l.includes(" A "));
    expect(a).toEqual([
      "start A 0",
      "end A 0",
      "start A 1",
      "end A 1",
      "start A 2",
      "end A 2",
      "start A 3",
      "end A 3",
    ]);
    expect(log.filter((l) => l.includes(" B "))).toEqual(["start B 0", "end B 0", "start B 1", "end B 1"]);
  });

  it("retries by the task's strategy and records each attempt", async () => {
    let calls = 0;
    const flaky = app.task({ name: "flaky", retry: { maxAttempts: 3 } }, async () => {
      calls++;
      if (calls < 3) throw new Error(`boom ${calls}`);
      return "ok";
    });
    const id = await flaky.defer({});
    start({ concurrency: 1 });
    const done = await waitFor(async () => {
      const j = await job(id);
      return j.status === "succeeded" && j;
    });
    expect(done.attempts).toBe(3);
    expect(done.events.filter((e) => e.type === "deferred_for_retry")).toHaveLength(2);
  });

  it("fails for good once maxAttempts is reached", async () => {
    const failing = app.task({ name: "failing", retry: 2 }, async () => {
      throw new TypeError("nope");
    });
    const id = await failing.defer({});
    start({ concurrency: 1 });
    const j = await waitFor(async () => {
      const j = await job(id);
      return j.status === "failed" && j;
    });
    expect(j.attempts).toBe(2);
    expect(j.error).toMatchObject({ name: "TypeError", message: "nope" });
  });

  it("fails jobs of unknown tasks without retry and keeps running", async () => {
    const known = app.task({ name: "known" }, async () => "fine");
    const unknownId = (
      await app.configureTask("nobody_knows_me", { allowUnknown: true }).batchDefer([{}])
    )[0]!;
    const knownId = await known.defer({});
    await start({ wait: false }).done;
    expect(await job(unknownId)).toMatchObject({
      status: "failed",
      attempts: 1,
      error: { name: "TaskNotFound" },
    });
    expect((await job(unknownId)).error!.message).toContain("nobody_knows_me");
    expect(await job(knownId)).toMatchObject({ status: "succeeded" });
  });

  it("fails jobs whose args do not match the task's schema, without retry", async () => {
    const schema = {
      "~standard": {
        version: 1 as const,
        vendor: "test",
        validate: (v: unknown) =>
          typeof (v as { n?: unknown }).n === "number"
            ? { value: v as { n: number } }
            : { issues: [{ message: "n must be a number" }] },
      },
    };
    const typed = app.task({ name: "typed", schema, retry: 5 }, async ({ n }: { n: number }) => n * 2);
    // Deferred by name, bypassing the defer-time check, as another app might.
    const badId = (await app.configureTask("typed").batchDefer([{ n: 1 }]))[0]!;
    await app.connector.query(`UPDATE proc.jobs SET args = '{"n":"x"}' WHERE id = $1`, [badId]);
    const goodId = await typed.defer({ n: 21 });
    await start({ wait: false }).done;
    expect(await job(badId)).toMatchObject({ status: "failed", attempts: 1, error: { name: "InvalidArgs" } });
    expect(await job(goodId)).toMatchObject({ status: "succeeded", result: 42 });
    await expect(typed.defer({ n: "y" } as never)).rejects.toThrow("n must be a number");
  });

  it("records non-Error throws and non-JSON results as failures", async () => {
    const throwsString = app.task({ name: "throws_string" }, async () => {
      throw "plain string";
    });
    const badResult = app.task({ name: "bad_result" }, async () => ({ when: new Date() }));
    const a = await throwsString.defer({});
    const b = await badResult.defer({});
    await start({ wait: false }).done;
    expect(await job(a)).toMatchObject({ status: "failed", error: { name: "NonError" } });
    expect((await job(a)).error!.message).toContain("plain string");
    expect(await job(b)).toMatchObject({ status: "failed", error: { name: "InvalidResult" } });
  });

  it("fails a task that never settles when its timeout fires, and moves on", async () => {
    let reason: unknown;
    const stuck = app.task({ name: "stuck", timeout: 300 }, (_args, ctx) => {
      ctx.signal.addEventListener("abort", () => {
        reason = ctx.signal.reason;
      });
      return new Promise<never>(() => {});
    });
    const after = app.task({ name: "after" }, async () => "done");
    const id = await stuck.defer({});
    const afterId = await after.defer({});
    start({ concurrency: 1 });
    await waitFor(async () => (await job(afterId)).status === "succeeded");
    expect(await job(id)).toMatchObject({ status: "failed", error: { name: "JobTimeoutError" } });
    expect(reason).toBeInstanceOf(JobTimeoutError);
  });

  for (const listenNotify of [true, false]) {
    it(`aborts a running job on request ${listenNotify ? "through NOTIFY" : "by polling"}`, async () => {
      let started = false;
      const long = app.task({ name: "long", retry: 5 }, async (_args, ctx) => {
        started = true;
        await new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
        );
      });
      const id = await long.defer({});
      start({ listenNotify, abortPollInterval: 100 });
      await waitFor(() => started);
      expect(await app.jobManager.cancelJob(id, { abort: true })).toBe("doing");
      const j = await waitFor(async () => {
        const j = await job(id);
        return j.status === "aborted" && j;
      });
      expect(j.attempts).toBe(1); // not retried, although the task retries
      expect(j.events.map((e) => e.type)).toContain("abort_requested");
    });
  }

  it("cancels todo jobs so that they never run", async () => {
    let ran = false;
    const t1 = app.task({ name: "never" }, async () => {
      ran = true;
    });
    const id = await t1.defer({});
    expect(await app.jobManager.cancelJob(id)).toBe("cancelled");
    await start({ wait: false }).done;
    expect(ran).toBe(false);
    expect((await job(id)).status).toBe("cancelled");
  });

  it("starts a job scheduled 2 s ahead on time without waiting for a poll", async () => {
    let startedAt = 0;
    const later = app.task({ name: "later" }, async () => {
      startedAt = Date.now();
    });
    start({ pollInterval: 60_000 });
    await new Promise((r) => setTimeout(r, 200)); // the worker is idle, waiting
    const due = Date.now() + 2000;
    await later.configure({ scheduleAt: new Date(due) }).defer({});
    await waitFor(() => startedAt, { timeoutMs: 10_000 });
    expect(startedAt).toBeGreaterThanOrEqual(due - 50);
    expect(startedAt - due).toBeLessThan(500);
  });

  it("wakes on NOTIFY instead of waiting for the poll", async () => {
    let done = false;
    const quick = app.task({ name: "quick" }, async () => {
      done = true;
    });
    start({ pollInterval: 60_000 });
    await new Promise((r) => setTimeout(r, 200));
    await quick.defer({});
    await waitFor(() => done, { timeoutMs: 5000 });
  });

  it("on stop, lets running jobs finish, keeping heartbeats going", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const waiting = app.task({ name: "waiting" }, async () => {
      await gate;
      return "finished";
    });
    const id = await waiting.defer({});
    const { worker, done } = start({ heartbeatInterval: 100, shutdownTimeout: 10_000 });
    await waitFor(async () => (await job(id)).status === "doing");
    const stopped = worker.stop();
    expect(worker.stop()).toBe(stopped); // idempotent
    const [before] = await app.jobManager.listWorkers();
    await new Promise((r) => setTimeout(r, 400));
    const [during] = await app.jobManager.listWorkers();
    expect(during!.lastHeartbeatAt.getTime()).toBeGreaterThan(before!.lastHeartbeatAt.getTime());
    release();
    await done;
    expect(await job(id)).toMatchObject({ status: "succeeded", result: "finished" });
  });

  it("after shutdownTimeout, aborts what is left: retried if the task retries, else aborted", async () => {
    const hang = (name: string, retry?: number) =>
      app.task({ name, ...(retry && { retry }) }, async (_args, ctx) => {
        await new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
        );
      });
    const plain = await hang("hang_plain").defer({});
    const retrying = await hang("hang_retrying", 3).defer({});
    const { worker, done } = start({ concurrency: 2, shutdownTimeout: 200 });
    await waitFor(
      async () => (await job(plain)).status === "doing" && (await job(retrying)).status === "doing",
    );
    await worker.stop();
    await done;
    expect(await job(plain)).toMatchObject({ status: "aborted", error: { name: "WorkerShutdownError" } });
    expect(await job(retrying)).toMatchObject({ status: "todo", attempts: 1 });
  });

  it("resolves waitForJob with the outcome, driven by NOTIFY", async () => {
    const echo = app.task({ name: "echo" }, async ({ v }: { v: string }) => ({ v }));
    const id = await echo.defer({ v: "hello" });
    const waiting = app.jobManager.waitForJob(id, { timeoutMs: 10_000 });
    start();
    expect(await waiting).toMatchObject({ id, status: "succeeded", result: { v: "hello" } });
    await expect(app.jobManager.waitForJob(id)).resolves.toMatchObject({ status: "succeeded" });
  });

  it("deletes finished jobs when asked", async () => {
    const ok = app.task({ name: "ok" }, async () => 1);
    const ko = app.task({ name: "ko" }, async () => {
      throw new Error("x");
    });
    const okId = await ok.defer({});
    const koId = await ko.defer({});
    await start({ wait: false, deleteJobs: "successful" }).done;
    expect(await app.jobManager.getJob(okId)).toBeNull();
    expect((await job(koId)).status).toBe("failed");
  });

  it("passes additional context and runs worker then task middleware around tasks", async () => {
    const seen: string[] = [];
    const taskMiddleware = async (_ctx: unknown, next: () => Promise<unknown>) => {
      seen.push("task before");
      const r = await next();
      seen.push("task after");
      return `${String(r)}!`;
    };
    const ctxTask = app.task({ name: "ctx", middleware: [taskMiddleware] }, async (_args, ctx) => {
      seen.push(`task ${(ctx as unknown as { greeting: string }).greeting} ${ctx.workerName}`);
      return "r";
    });
    await ctxTask.defer({});
    await start({
      wait: false,
      name: "w-ctx",
      additionalContext: { greeting: "hi" },
      middleware: [
        async (ctx, next) => {
          seen.push(`before ${ctx.job.task}`);
          const r = await next();
          seen.push(`after ${String(r)}`);
          return r;
        },
      ],
    }).done;
    expect(seen).toEqual(["before ctx", "task before", "task hi w-ctx", "task after", "after r!"]);
  });

  it("gives a task its context, which additional context cannot override", async () => {
    let seen: Record<string, unknown> = {};
    const task = app.task({ name: "ctx-fields" }, async (_args, ctx) => {
      seen = {
        jobId: ctx.job.id,
        workerId: ctx.workerId,
        workerName: ctx.workerName,
        app: ctx.app === app,
        signal: ctx.signal instanceof AbortSignal && !ctx.signal.aborted,
        // The same signal each time it is read (the task's one AbortSignal).
        sameSignal: [ctx.signal].includes(ctx.signal),
        logger: typeof ctx.logger.info === "function",
        extra: (ctx as unknown as { extra: number }).extra,
      };
    });
    const id = await task.defer({});
    const { worker, done } = start({
      wait: false,
      name: "w-fields",
      additionalContext: { extra: 1, job: "not the job", workerName: "not the name" },
    });
    await done;
    expect(seen).toEqual({
      jobId: id,
      workerId: worker.id,
      workerName: "w-fields",
      app: true,
      signal: true,
      sameSignal: true,
      logger: true,
      extra: 1,
    });
  });

  it("tells listeners when jobs start, succeed, fail and are retried", async () => {
    const ok = app.task({ name: "ev-ok" }, async () => 42);
    const retried = app.task({ name: "ev-retry", retry: { maxAttempts: 2 } }, async () => {
      throw new Error("boom");
    });
    const okId = await ok.defer({});
    const retryId = await retried.defer({});
    const { worker, done } = start({ wait: false });
    const seen: string[] = [];
    worker.on("job:start", ({ job }) => seen.push(`start ${job.id}`));
    worker.on("job:success", ({ job, result }) => seen.push(`success ${job.id} ${String(result)}`));
    worker.on("job:retry", ({ job }) => seen.push(`retry ${job.id}`));
    worker.on("job:error", ({ job, status }) => seen.push(`error ${job.id} ${status}`));
    await done;
    const of = (id: number) => seen.filter((e) => e.split(" ")[1] === String(id));
    expect(of(okId)).toEqual([`start ${okId}`, `success ${okId} 42`]);
    expect(of(retryId)).toEqual([
      `start ${retryId}`,
      `retry ${retryId}`,
      `start ${retryId}`,
      `error ${retryId} failed`,
    ]);
  });

  it("prefetches short jobs, and gives back the ones it has not started when it stops", async () => {
    const noop = app.task({ name: "noop" }, async () => {});
    const ids = await noop.batchDefer(Array.from({ length: 600 }, () => ({})));
    let biggest = 0;
    const { worker, done } = start({ concurrency: 2 });
    worker.on("worker:fetch", ({ count }) => {
      biggest = Math.max(biggest, count);
      if (count > 2) void worker.stop(); // claimed beyond its 2 slots: stop with a buffer
    });
    await done;
    expect(biggest).toBeGreaterThan(2);
    const jobs = await app.jobManager.listJobs({ limit: 1000 });
    expect(jobs).toHaveLength(ids.length);
    expect(jobs.filter((j) => j.status === "doing")).toEqual([]);
    const released = jobs.filter((j) => j.events.some((e) => e.type === "released"));
    expect(released.length).toBeGreaterThan(0);
    for (const j of released) expect(j).toMatchObject({ status: "todo", attempts: 0 });
    const todo = jobs.filter((j) => j.status === "todo").length;
    expect(jobs.filter((j) => j.status === "succeeded").length + todo).toBe(ids.length);
  });

  it("prefetches large jobs only as many as fit in prefetchBytes", async () => {
    // 20 KB of args per job: 100 KB of prefetch holds 4 or 5 of them.
    const pad = "x".repeat(20_000);
    const big = app.task({ name: "big" }, async (_args: { pad: string }) => {
      started++;
    });
    let started = 0;
    const drain = async (options: WorkerOptions) => {
      started = 0;
      await big.batchDefer(Array.from({ length: 150 }, () => ({ pad })));
      let claimed = 0;
      let mostBuffered = 0;
      const { worker, done } = start({ wait: false, concurrency: 2, ...options });
      worker.on("worker:fetch", ({ count }) => {
        claimed += count;
        // Claimed but not started yet (a job handed to a slot may not have begun: at
        // most `concurrency` of these are not in the buffer).
        mostBuffered = Math.max(mostBuffered, claimed - started);
      });
      await done;
      expect(started).toBe(150);
      return mostBuffered;
    };
    const bounded = await drain({ prefetchBytes: 100_000 });
    // The buffer holds at most what fits (4) plus the slots idle at the claim (2), and
    // the count above may include the 2 jobs just handed to the slots.
    expect(bounded).toBeLessThanOrEqual(4 + 2 + 2);
    // The same drain with the default 4 MiB prefetches deep (measured: 144 of the 150),
    // so the bound above is prefetchBytes at work, not a shallow prefetch.
    expect(await drain({})).toBeGreaterThan(20);
  });

  it("aborts a prefetched job that was asked to abort before it started, without running it", async () => {
    const ran: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const warm = app.task({ name: "warm" }, async () => {}); // teaches the worker that jobs are short
    const gated = app.task({ name: "gated" }, async (_args, ctx) => {
      ran.push(ctx.job.id);
      await gate;
    });
    await warm.defer({});
    const { worker } = start({ concurrency: 1 });
    await waitFor(async () => (await app.jobManager.listJobs({ status: "succeeded" })).length === 1);
    const ids = await gated.batchDefer([{}, {}, {}, {}]);
    // The first runs (and blocks); the others are claimed ahead into the buffer.
    await waitFor(async () => (await app.jobManager.listJobs({ status: "doing" })).length === 4);
    expect(ran).toEqual([ids[0]]);
    const target = ids[2]!;
    expect(await app.jobManager.cancelJob(target, { abort: true })).toBe("doing");
    await waitFor(async () => (await app.jobManager.getJob(target))?.status === "aborted");
    release();
    await waitFor(async () => (await app.jobManager.listJobs({ status: "succeeded" })).length === 4);
    expect(ran).toEqual([ids[0], ids[1], ids[3]]);
    expect(worker.state).toBe("running");
  });

  it("does not hoard slow jobs: fetches no more than its free slots", async () => {
    const slow = app.task({ name: "slow_fetch" }, async () => {
      await new Promise((r) => setTimeout(r, 100));
    });
    await slow.batchDefer(Array.from({ length: 8 }, () => ({})));
    const counts: number[] = [];
    const { worker, done } = start({ concurrency: 2, wait: false });
    worker.on("worker:fetch", ({ count }) => counts.push(count));
    await done;
    expect(Math.max(...counts)).toBeLessThanOrEqual(2);
    expect((await app.jobManager.listJobs({ status: "succeeded" })).length).toBe(8);
  });

  it("claims no new job while it cannot record finished ones, and records them once it can", async () => {
    const quick = app.task({ name: "quick" }, async () => "ok");
    // The database refuses to mark jobs succeeded, as if the connection failed on
    // every write (SQLSTATE 08006 is a connection failure).
    await app.connector.query(`
      CREATE FUNCTION proc.refuse_success() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'test: writes refused' USING ERRCODE = '08006'; END $$;
      CREATE TRIGGER refuse_success BEFORE UPDATE ON proc.jobs
        FOR EACH ROW WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION proc.refuse_success();`);
    const [first] = await quick.batchDefer([{}]);
    const { worker } = start({ concurrency: 1, prefetch: 0 });
    const refused = new Promise<void>((resolve) =>
      worker.on("worker:error", ({ action }) => action === "finish" && resolve()),
    );
    await refused;
    // Its slot is free, but its outcome is unwritten: it must not take more work.
    const later = await quick.batchDefer([{}, {}]);
    await new Promise((r) => setTimeout(r, 800)); // four poll intervals
    expect((await Promise.all(later.map(job))).map((j) => j.status)).toEqual(["todo", "todo"]);
    expect((await job(first!)).status).toBe("doing");

    await app.connector.query("DROP TRIGGER refuse_success ON proc.jobs");
    await waitFor(async () => (await app.jobManager.listJobs({ status: "succeeded" })).length === 3, {
      what: "every job to succeed once writes work again",
    });
  });

  it("does not even build per-job lines at levels its logger does not write", async () => {
    const quick = app.task({ name: "quiet" }, async () => "ok");
    const run = async (enabled: (level: string) => boolean): Promise<unknown[]> => {
      const actions: unknown[] = [];
      const logger = (): Logger => ({
        debug: (obj) => actions.push(obj.action),
        info: (obj) => actions.push(obj.action),
        warn: (obj) => actions.push(obj.action),
        error: (obj) => actions.push(obj.action),
        child: () => logger(),
        isLevelEnabled: enabled,
      });
      await quick.defer({});
      await start({ wait: false, logger: logger() }).done;
      return actions;
    };
    expect(await run(() => true)).toEqual(expect.arrayContaining(["start_job", "job_success"]));
    const quiet = await run((level) => level === "warn" || level === "error");
    expect(quiet).not.toContain("start_job");
    expect(quiet).not.toContain("job_success");
    // consoleLogger answers for its own level.
    const warnOnly = consoleLogger({ level: "warn", write: () => {} });
    expect([warnOnly.isLevelEnabled?.("info"), warnOnly.isLevelEnabled?.("error")]).toEqual([false, true]);
  });

  it("rejects bad options in one error naming each", () => {
    expect(
      () => new Worker(app, { concurrency: 0, pollInterval: -1, deleteJobs: "sometimes" as never }),
    ).toThrow(/concurrency.*\n.*pollInterval.*\n.*deleteJobs/s);
  });

  it("refuses to start on a database without the schema", async () => {
    const fresh = createTestApp(backend, { schema: "not_installed" });
    const other = await fresh;
    try {
      await expect(new Worker(other.app, { handleSignals: false }).run()).rejects.toThrow(
        /proc schema apply/,
      );
    } finally {
      await other.dispose();
    }
  });
});
