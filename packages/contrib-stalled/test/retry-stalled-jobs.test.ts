import { App, type Connector, type JobContext, type JsonObject, type Task } from "@proc/core";
import { scheduler } from "@proc/scheduler";
import { backends, createTestApp } from "@proc/fixtures";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  RETRY_STALLED_JOBS_TASK,
  type RetryStalledJobsOptions,
  type RetryStalledJobsResult,
  retryStalledJobs,
} from "../src/index.js";
import {
  backdateHeartbeat,
  backdateStart,
  claimOnDeadWorker,
  recordingLogger,
  registerWorker,
  startService,
} from "@proc/fixtures";

const offline = () =>
  new App({ connector: { query: async () => [] } as unknown as Connector, logger: recordingLogger() });

describe("plugin setup", () => {
  it("registers a periodic task with a queueing lock of the same name and no lock", () => {
    const app = offline().use(scheduler()).use(retryStalledJobs());
    const task = app.getTask(RETRY_STALLED_JOBS_TASK)!;
    expect(task.options).toMatchObject({
      name: "proc:retry_stalled_jobs",
      queueingLock: "proc:retry_stalled_jobs",
    });
    expect(task.options.lock).toBeUndefined();
    expect(app.plugins).toEqual(["scheduler", "retry-stalled-jobs"]);
  });

  it("says to add the scheduler first when it is missing", () => {
    expect(() => offline().use(retryStalledJobs())).toThrow(
      /\.use\(scheduler\(\)\)\.use\(retryStalledJobs\(\)\)/,
    );
  });

  it("validates its options, every problem at once", () => {
    let error: unknown;
    try {
      retryStalledJobs({
        cron: "every 10 s",
        heartbeatSeconds: 0,
        maxStalledRetries: 1.5,
        queues: "a" as never,
      });
    } catch (e) {
      error = e;
    }
    expect((error as { problems: string[] }).problems).toEqual([
      expect.stringMatching(/^cron: "every 10 s"/),
      expect.stringMatching(/^heartbeatSeconds/),
      expect.stringMatching(/^maxStalledRetries/),
      expect.stringMatching(/^queues/),
    ]);
    expect(() => retryStalledJobs({ heartbeatSeconds: 30, nbSeconds: 60 })).toThrow(/not both/);
  });
});

describe.each(backends())("retryStalledJobs (%s)", (backend) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(options: RetryStalledJobsOptions = {}) {
    const t = await createTestApp(backend);
    cleanups.push(t.dispose);
    const app = t.app.use(scheduler()).use(retryStalledJobs(options));
    const work = app.task({ name: "work", queue: "work" }, async (_args: { n: number }) => {});
    const logger = recordingLogger();
    /** One run of the plugin's task, as a worker would run it. */
    const runRetryTask = async (jobId = 0) => {
      const task = app.getTask(RETRY_STALLED_JOBS_TASK) as unknown as Task<{ timestamp: number }, unknown>;
      const ctx = {
        app,
        logger,
        job: { id: jobId },
        signal: new AbortController().signal,
        workerId: 0,
        workerName: "t",
      };
      return (await task.handler(
        { timestamp: 0 },
        ctx as unknown as JobContext<{ timestamp: number }>,
      )) as RetryStalledJobsResult;
    };
    return { ...t, app, work, logger, runRetryTask };
  }

  it("retries the job of a worker that stopped heartbeating, and logs it", async () => {
    const { app, work, logger, runRetryTask } = await setup();
    const id = await work.defer({ n: 1 });
    const deadWorker = await claimOnDeadWorker(app, id);

    const result = await runRetryTask();

    expect(result.retried).toEqual([id]);
    const job = (await app.jobManager.getJob(id))!;
    expect(job).toMatchObject({ status: "todo", stalledCount: 1, workerId: null });
    expect(job.events.at(-1)).toMatchObject({ type: "retried", from: "doing", worker_id: deadWorker });
    const [line] = logger.records.filter((r) => r.action === "retry_stalled_job");
    expect(line?.fields).toMatchObject({
      stalledJobId: id,
      stalledTask: "work",
      deadWorkerId: deadWorker,
      previousStalledCount: 0,
    });
  });

  it("retries the job of a worker whose row is gone", async () => {
    const { app, work, runRetryTask } = await setup();
    const id = await work.defer({ n: 1 });
    const workerId = await claimOnDeadWorker(app, id);
    await app.jobManager.unregisterWorker(workerId);
    expect((await runRetryTask()).retried).toEqual([id]);
  });

  it("leaves alone the slow job of a worker that still heartbeats", async () => {
    const { app, work, runRetryTask } = await setup();
    const slow = await work.defer({ n: 1 });
    const live = await registerWorker(app, "live");
    await app.jobManager.fetchJobs(live, null, 1);
    // Running for an hour, but its worker beat 5 s ago: not stalled in heartbeat mode.
    await backdateStart(app, slow, 3600);
    await backdateHeartbeat(app, live, 5);
    const dead = await work.defer({ n: 2 });
    await claimOnDeadWorker(app, dead);

    expect((await runRetryTask()).retried).toEqual([dead]);
    expect((await app.jobManager.getJob(slow))?.status).toBe("doing");
  });

  it("legacy nbSeconds mode retries jobs running longer than nbSeconds, whatever their worker", async () => {
    const { app, work, runRetryTask } = await setup({ nbSeconds: 30 });
    const long = await work.defer({ n: 1 });
    const short = await work.defer({ n: 2 });
    const live = await registerWorker(app, "live");
    await app.jobManager.fetchJobs(live, null, 2);
    await backdateStart(app, long, 60);

    expect((await runRetryTask()).retried).toEqual([long]);
    expect((await app.jobManager.getJob(short))?.status).toBe("doing");
  });

  it("fails a job that stalled more than maxStalledRetries times (poison job)", async () => {
    const { app, work, logger, runRetryTask } = await setup({ maxStalledRetries: 2 });
    const id = await work.defer({ n: 1 });
    for (let i = 0; i < 2; i++) {
      await claimOnDeadWorker(app, id);
      expect((await runRetryTask()).retried).toEqual([id]);
    }
    const lastWorker = await claimOnDeadWorker(app, id);
    const result = await runRetryTask();

    expect(result).toMatchObject({ retried: [], failed: [id] });
    const job = (await app.jobManager.getJob(id))!;
    expect(job).toMatchObject({ status: "failed", stalledCount: 2 });
    expect(job.error).toMatchObject({ name: "StalledJobError", workerId: lastWorker, stalledCount: 2 });
    expect(job.error?.message).toMatch(/stalled again .* after 2 recoveries; maxStalledRetries is 2/);
    const [line] = logger.records.filter((r) => r.action === "fail_stalled_job");
    expect(line).toMatchObject({
      level: "error",
      fields: { stalledJobId: id, stalledTask: "work", deadWorkerId: lastWorker },
    });
  });

  it("retries a stalled job whose queueing lock a newer todo job holds: both jobs are kept", async () => {
    const { app, logger, runRetryTask } = await setup();
    const mail = app.task({ name: "mail", queueingLock: "mail:1" }, async () => {});
    const old = await mail.defer({});
    await claimOnDeadWorker(app, old);
    const newer = await mail.defer({}); // allowed: the lock guards todo jobs only

    expect((await runRetryTask()).retried).toEqual([old]);
    const [a, b] = [(await app.jobManager.getJob(old))!, (await app.jobManager.getJob(newer))!];
    expect(a).toMatchObject({ status: "todo", queueingLock: null });
    expect(b).toMatchObject({ status: "todo", queueingLock: "mail:1" });
    expect(logger.records.find((r) => r.action === "retry_stalled_job")?.fields).toMatchObject({
      stalledJobId: old,
      queueingLockDropped: true,
    });
  });

  it("recovers only the queues and tasks it is given", async () => {
    const { app, runRetryTask } = await setup({ queues: ["a", "b"], tasks: ["x"] });
    const x = app.task({ name: "x" }, async () => {});
    const y = app.task({ name: "y" }, async () => {});
    const ids = [
      await x.configure({ queue: "a" }).defer({}),
      await x.configure({ queue: "b" }).defer({}),
      await x.configure({ queue: "c" }).defer({}),
      await y.configure({ queue: "a" }).defer({}),
    ];
    for (const id of ids) await claimOnDeadWorker(app, id);
    expect((await runRetryTask()).retried).toEqual(ids.slice(0, 2));
  });

  it("prunes worker rows silent for more than 2 × heartbeatSeconds", async () => {
    const { app, runRetryTask } = await setup({ heartbeatSeconds: 10 });
    const [gone, recent, live] = [
      await registerWorker(app),
      await registerWorker(app),
      await registerWorker(app),
    ];
    await backdateHeartbeat(app, gone, 25);
    await backdateHeartbeat(app, recent, 15); // dead, but kept a little longer for `proc workers`
    expect((await runRetryTask()).prunedWorkers).toEqual([gone]);
    expect((await app.jobManager.listWorkers()).map((w) => w.id).sort()).toEqual([recent, live].sort());
  });

  it("a dead run of the retry task blocks neither the next tick nor its own recovery", async () => {
    const { app, work, runRetryTask } = await setup({ cron: "* * * * * *" });
    // A worker died while running the retry task: its job stays doing, with the queueing lock.
    const retryTask = app.getTask(RETRY_STALLED_JOBS_TASK) as unknown as Task<{ timestamp: number }, unknown>;
    const deadRun = await retryTask.defer({ timestamp: 0 });
    await claimOnDeadWorker(app, deadRun);
    const stuck = await work.defer({ n: 1 });
    await claimOnDeadWorker(app, stuck);

    // The scheduler still defers the next tick: a doing job does not hold a queueing lock.
    const service = startService(app, "scheduler", recordingLogger());
    cleanups.push(service.stop);
    await vi.waitFor(
      async () =>
        expect(await app.jobManager.listJobs({ task: RETRY_STALLED_JOBS_TASK, status: "todo" })).toHaveLength(
          1,
        ),
      { timeout: 5_000, interval: 100 },
    );
    await service.stop();

    // A live worker runs that new job: it recovers the plain job and the dead run alike.
    const [next] = await app.jobManager.listJobs({ task: RETRY_STALLED_JOBS_TASK, status: "todo" });
    const live = await registerWorker(app, "live");
    expect((await app.jobManager.fetchJobs(live, ["default"], 1))[0]?.id).toBe(next!.id);
    expect((await runRetryTask(next!.id)).retried).toEqual([deadRun, stuck]);
  });
});

describe.each(backends())("the hand-written recipe of DESIGN §3 (%s)", (backend) => {
  it("compiles against the extended app type and retries stalled jobs", async () => {
    await using t = await createTestApp(backend);
    const app = t.app.use(scheduler());
    // Verbatim from DESIGN.md §3.
    app.periodic(
      { cron: "*/10 * * * *" },
      app.task(
        { name: "retry_stalled_jobs", queueingLock: "retry_stalled_jobs" },
        // biome-ignore lint/correctness/noUnusedFunctionParameters: verbatim from DESIGN.md §3.
        async (_args: { timestamp: number }, ctx) => {
          for (const job of await app.jobManager.getStalledJobs({ nbSeconds: 30 }))
            await app.jobManager.retryJob(job);
        },
      ),
    );

    const work = app.task({ name: "work" }, async (_args: JsonObject) => {});
    const id = await work.defer({});
    const worker = await registerWorker(app);
    await app.jobManager.fetchJobs(worker, null, 1);
    await backdateStart(app, id, 60);
    const recipe = app.getTask("retry_stalled_jobs") as unknown as Task<{ timestamp: number }, unknown>;
    await recipe.handler({ timestamp: 0 }, { app } as unknown as JobContext<{ timestamp: number }>);
    expect(await app.jobManager.getJob(id)).toMatchObject({ status: "todo", stalledCount: 1 });
  });
});
