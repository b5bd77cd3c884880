import { type Connector, JobNotFound, type JsonObject, type NewJob, WaitTimeout } from "@proc/core";
import { backends } from "@proc/testing";
import { type MockInstance, beforeEach, describe, expect, it, vi } from "vitest";
import { eventTypes, getJob, idsOf, registerWorker, sql, useSharedApp } from "./helpers.js";

describe.each(backends())("JobManager on %s", (backend) => {
  const ctx = useSharedApp(backend);
  const app = () => ctx.app;
  const jm = () => ctx.app.jobManager;

  const defer = (
    options: { task?: string; queue?: string; priority?: number; lock?: string; queueingLock?: string } = {},
    args: JsonObject = {},
  ) => {
    const { task = "t", ...rest } = options;
    return app()
      .configureTask(task, { allowUnknown: true, ...rest })
      .defer(args);
  };
  const error = { name: "Error", message: "boom" };

  /** A job that a registered worker has fetched (doing), with the run it claimed. */
  async function doingJob(options: Parameters<typeof defer>[0] = {}, worker?: number) {
    const w = worker ?? (await registerWorker(app()));
    const id = await defer(options);
    const fetched = await jm().fetchJobs(w, [options.queue ?? "default"], 100);
    const claimed = fetched.find((j) => j.id === id);
    expect(claimed).toBeDefined();
    return { id, worker: w, run: claimed!.run, ref: { id, run: claimed!.run } };
  }

  async function finished(status: "succeeded" | "failed" | "aborted" | "cancelled", options = {}) {
    if (status === "cancelled") {
      const id = await defer(options);
      await jm().cancelJob(id);
      return id;
    }
    const { id, run } = await doingJob(options);
    if (status === "succeeded") await jm().completeJobs([{ id, run, result: { r: id } }]);
    else await jm().failJob({ id, run }, { status, error });
    return id;
  }

  describe("retryJob", () => {
    it("puts a failed job back to todo, keeping its history", async () => {
      const id = await finished("failed");
      const job = await jm().retryJob(id);
      expect(job).toMatchObject({ id, status: "todo", scheduledAt: null, workerId: null, stalledCount: 0 });
      expect(job!.finishedAt).toBeNull();
      expect(eventTypes(job!)).toEqual(["deferred", "started", "failed", "retried"]);
      expect(job!.events.at(-1)).toMatchObject({ from: "failed", queueing_lock_dropped: false });
      expect(await getJob(app(), id)).toMatchObject({ status: "todo" });
      const worker = await registerWorker(app());
      const [again] = await jm().fetchJobs(worker, null, 1);
      expect(again).toMatchObject({ id, attempts: 2 });
    });

    it("accepts a Job and moves it in time, queue, priority and lock", async () => {
      const id = await finished("succeeded");
      const at = new Date(Date.now() + 3_600_000);
      const job = await jm().retryJob(await getJob(app(), id), { at, queue: "q2", priority: 7, lock: "L2" });
      expect(job).toMatchObject({ status: "todo", scheduledAt: at, queue: "q2", priority: 7, lock: "L2" });
      expect(await jm().retryJob((await finished("cancelled")) as number)).toMatchObject({ status: "todo" });
      expect(await jm().retryJob(await finished("aborted"))).toMatchObject({ status: "todo" });
    });

    it("recovers a doing (stalled) job: stalledCount + 1, worker cleared", async () => {
      const { id, worker, run } = await doingJob({ lock: "L" });
      const job = await jm().retryJob(id);
      expect(job).toMatchObject({ status: "todo", stalledCount: 1, workerId: null, lock: "L", run });
      expect(job!.events.at(-1)).toMatchObject({ type: "retried", from: "doing", worker_id: worker });
      // The old run can no longer finish it.
      expect(await jm().completeJobs([{ id, run, result: null }])).toEqual([]);
      expect(await jm().failJob({ id, run }, { status: "failed", error })).toBeNull();
      // And its lock is free for it again: a new run, which the old one cannot finish either.
      const [again] = await jm().fetchJobs(worker, null, 10);
      expect(again).toMatchObject({ id, attempts: 2, stalledCount: 1, run: run + 1 });
      expect(await jm().completeJobs([{ id, run, result: null }])).toEqual([]);
      expect(await jm().completeJobs([{ id, run: again!.run, result: null }])).toEqual([id]);
    });

    it("a doing Job is retried only while it is still doing the run it was read at", async () => {
      const { id, worker } = await doingJob();
      const seen = await getJob(app(), id);
      // Finished meanwhile: the stalled retry of what was seen does nothing.
      await jm().completeJobs([{ id, run: seen.run, result: null }]);
      expect(await jm().retryJob(seen)).toBeNull();
      expect((await getJob(app(), id)).status).toBe("succeeded");

      // Recovered and claimed again meanwhile, even by the same worker: nothing either.
      const { id: other } = await doingJob({}, worker);
      const stale = await getJob(app(), other);
      expect(await jm().retryJob(stale)).toMatchObject({ status: "todo", stalledCount: 1 });
      const [again] = await jm().fetchJobs(worker, null, 1);
      expect(again).toMatchObject({ id: other, workerId: worker, run: stale.run + 1 });
      expect(await jm().retryJob(stale)).toBeNull();
      expect(await getJob(app(), other)).toMatchObject({ status: "doing", run: again!.run, stalledCount: 1 });
    });

    it("drops the queueing lock when a newer todo job holds it; both jobs stay", async () => {
      const { id: old } = await doingJob({ queueingLock: "ql" });
      const newer = await defer({ queueingLock: "ql" });
      const job = await jm().retryJob(old);
      expect(job).toMatchObject({ id: old, status: "todo", queueingLock: null, stalledCount: 1 });
      expect(job!.events.at(-1)).toMatchObject({ type: "retried", queueing_lock_dropped: true });
      expect(await getJob(app(), newer)).toMatchObject({ status: "todo", queueingLock: "ql" });
      expect(idsOf(await jm().listJobs({ status: "todo" }))).toEqual([old, newer]);
    });

    it("keeps the queueing lock when nobody else holds it", async () => {
      const id = await finished("failed", { queueingLock: "mine" });
      expect(await jm().retryJob(id)).toMatchObject({ queueingLock: "mine" });
    });

    it("returns null for a todo job or an unknown id", async () => {
      const id = await defer();
      expect(await jm().retryJob(id)).toBeNull();
      expect(await jm().retryJob(424242)).toBeNull();
      expect(eventTypes(await getJob(app(), id))).toEqual(["deferred"]);
    });
  });

  describe("cancelJob", () => {
    it("cancels a todo job", async () => {
      const id = await defer();
      expect(await jm().cancelJob(id)).toBe("cancelled");
      const job = await getJob(app(), id);
      expect(job.status).toBe("cancelled");
      expect(job.finishedAt).toBeInstanceOf(Date);
      expect(eventTypes(job)).toEqual(["deferred", "cancelled"]);
      // Not fetched, and cancelling again changes nothing.
      expect(await jm().fetchJobs(await registerWorker(app()), null, 10)).toEqual([]);
      expect(await jm().cancelJob(id)).toBe("cancelled");
      expect(eventTypes(await getJob(app(), id))).toEqual(["deferred", "cancelled"]);
    });

    it("deletes a todo job with delete: true", async () => {
      const id = await defer();
      expect(await jm().cancelJob(id, { delete: true })).toBe("cancelled");
      expect(await jm().getJob(id)).toBeNull();
    });

    it("leaves a doing job alone without abort; with abort, requests it", async () => {
      const { id, worker, ref } = await doingJob();
      expect(await jm().cancelJob(id)).toBe("doing");
      expect(await jm().cancelJob(id, { delete: true })).toBe("doing");
      expect((await getJob(app(), id)).abortRequested).toBe(false);
      expect(await jm().abortRequestedJobs([id])).toEqual([]);

      expect(await jm().cancelJob(id, { abort: true })).toBe("doing");
      const job = await getJob(app(), id);
      expect(job).toMatchObject({ status: "doing", abortRequested: true });
      expect(job.events.at(-1)!.type).toBe("abort_requested");
      expect(await jm().abortRequestedJobs([id])).toEqual([id]);
      expect(await jm().heartbeatWorker(worker, [ref])).toEqual({
        workerFound: true,
        abortJobIds: [id],
        lostJobIds: [],
      });
      // Only the runs the worker names are looked at.
      expect(await jm().heartbeatWorker(worker)).toEqual({
        workerFound: true,
        abortJobIds: [],
        lostJobIds: [],
      });
      // Asking twice records it once.
      await jm().cancelJob(id, { abort: true });
      expect(eventTypes(await getJob(app(), id)).filter((t) => t === "abort_requested")).toHaveLength(1);
    });

    it("leaves finished jobs as they are and returns null for an unknown id", async () => {
      const id = await finished("succeeded");
      expect(await jm().cancelJob(id, { abort: true })).toBe("succeeded");
      expect(await jm().cancelJob(999_999)).toBeNull();
    });
  });

  describe("stalled jobs and workers", () => {
    // A beat that follows the previous one (of any test on this database) by more than
    // a few seconds records a shared silence, which would excuse the workers below: each
    // test starts with a database that has heard no beat (see fencing.test.ts for silences).
    beforeEach(async () => {
      await sql(app(), "UPDATE {schema}.liveness SET last_heartbeat_at = NULL, silence_ended_at = NULL");
    });

    const backdateWorkers = (ids: number[]) =>
      sql(
        app(),
        "UPDATE {schema}.workers SET last_heartbeat_at = now() - interval '1 minute' WHERE id = ANY ($1)",
        [ids],
      );

    it("heartbeat mode: a live worker's jobs are not stalled; a silent worker's are", async () => {
      const { id, worker, ref } = await doingJob();
      expect(await jm().getStalledJobs()).toEqual([]);
      expect(await jm().heartbeatWorker(worker, [ref])).toEqual({
        workerFound: true,
        abortJobIds: [],
        lostJobIds: [],
      });
      await backdateWorkers([worker]);
      expect((await jm().getStalledJobs()).map((j) => j.id)).toEqual([id]);
      expect((await jm().getStalledJobs({ heartbeatSeconds: 30 })).map((j) => j.id)).toEqual([id]);
      expect(await jm().getStalledJobs({ heartbeatSeconds: 120 })).toEqual([]);
      // A heartbeat brings it back.
      await jm().heartbeatWorker(worker, [ref]);
      expect(await jm().getStalledJobs()).toEqual([]);
    });

    it("heartbeat mode: a job whose worker row is gone is stalled", async () => {
      const { id, worker, ref } = await doingJob();
      await jm().unregisterWorker(worker);
      expect((await jm().getStalledJobs({ heartbeatSeconds: 3600 })).map((j) => j.id)).toEqual([id]);
      expect(await jm().heartbeatWorker(worker, [ref])).toEqual({
        workerFound: false,
        abortJobIds: [],
        lostJobIds: [],
      });
    });

    it("legacy nbSeconds mode: jobs running longer than N seconds, whatever their worker", async () => {
      const { id } = await doingJob();
      const { id: young } = await doingJob();
      expect(await jm().getStalledJobs({ nbSeconds: 30 })).toEqual([]);
      await sql(app(), "UPDATE {schema}.jobs SET started_at = now() - interval '1 minute' WHERE id = $1", [
        id,
      ]);
      expect((await jm().getStalledJobs({ nbSeconds: 30 })).map((j) => j.id)).toEqual([id]);
      expect(await jm().getStalledJobs({ nbSeconds: 120 })).toEqual([]);
      expect(young).not.toBe(id);
    });

    it("filters by queue and task, and ignores jobs that are not doing", async () => {
      const worker = await registerWorker(app());
      const a = (await doingJob({ queue: "qa", task: "ta" }, worker)).id;
      const b = (await doingJob({ queue: "qb", task: "tb" }, worker)).id;
      await defer({ queue: "qa", task: "ta" });
      await finished("failed", { queue: "qa", task: "ta" });
      await backdateWorkers([worker]);
      await sql(app(), "UPDATE {schema}.workers SET last_heartbeat_at = now() - interval '1 minute'");
      expect(idsOf(await jm().getStalledJobs())).toEqual(idsOf(await jm().listJobs({ status: "doing" })));
      expect((await jm().getStalledJobs({ queue: "qa" })).map((j) => j.id)).toContain(a);
      expect((await jm().getStalledJobs({ queue: "qa" })).map((j) => j.id)).not.toContain(b);
      expect((await jm().getStalledJobs({ task: "tb" })).map((j) => j.id)).toEqual([b]);
      expect(await jm().getStalledJobs({ queue: "qa", task: "tb" })).toEqual([]);
    });

    it("the stalled recipe: retry every stalled job, then it runs again", async () => {
      const { id, worker } = await doingJob();
      await backdateWorkers([worker]);
      for (const job of await jm().getStalledJobs({ heartbeatSeconds: 30 })) await jm().retryJob(job);
      expect(await getJob(app(), id)).toMatchObject({ status: "todo", stalledCount: 1 });
      expect(await jm().getStalledJobs()).toEqual([]);
    });

    it("pruneWorkers removes only silent workers, whose jobs become stalled", async () => {
      const live = await registerWorker(app(), "live");
      const { id, worker: silent } = await doingJob({}, await registerWorker(app(), "silent"));
      await backdateWorkers([silent]);
      expect(await jm().pruneWorkers(3600)).toEqual([]);
      expect(await jm().pruneWorkers(30)).toEqual([silent]);
      expect((await jm().listWorkers()).map((w) => w.id)).toEqual([live]);
      expect((await jm().getStalledJobs({ heartbeatSeconds: 3600 })).map((j) => j.id)).toEqual([id]);
      // The job itself is untouched.
      expect(await getJob(app(), id)).toMatchObject({ status: "doing", workerId: silent });
    });
  });

  describe("listings", () => {
    it("listQueues, listTasks, listLocks and listWorkers count by status", async () => {
      const w1 = await jm().registerWorker({
        name: "w1",
        host: "h",
        pid: 11,
        queues: ["a", "b"],
        concurrency: 3,
      });
      await defer({ queue: "a", task: "x", lock: "L1" });
      await defer({ queue: "a", task: "x", lock: "L1" });
      const { id: doing } = await doingJob({ queue: "b", task: "y", lock: "L2" }, w1);
      await finished("succeeded", { queue: "b", task: "y" });
      await finished("failed", { queue: "b", task: "x" });
      await finished("cancelled", { queue: "c", task: "y" });
      await finished("aborted", { queue: "c", task: "y", lock: "L3" });

      const zero = { todo: 0, doing: 0, succeeded: 0, failed: 0, cancelled: 0, aborted: 0 };
      expect(await jm().listQueues()).toEqual([
        { ...zero, name: "a", todo: 2 },
        { ...zero, name: "b", doing: 1, succeeded: 1, failed: 1 },
        { ...zero, name: "c", cancelled: 1, aborted: 1 },
      ]);
      expect(await jm().listTasks()).toEqual([
        { ...zero, name: "x", todo: 2, failed: 1 },
        { ...zero, name: "y", doing: 1, succeeded: 1, cancelled: 1, aborted: 1 },
      ]);
      // Only locks of waiting or running jobs.
      expect(await jm().listLocks()).toEqual([
        { name: "L1", todo: 2, doing: 0 },
        { name: "L2", todo: 0, doing: 1 },
      ]);
      const workers = await jm().listWorkers();
      const mine = workers.find((w) => w.id === w1)!;
      expect(mine).toMatchObject({
        name: "w1",
        host: "h",
        pid: 11,
        queues: ["a", "b"],
        concurrency: 3,
        doing: 1,
      });
      expect(mine.startedAt).toBeInstanceOf(Date);
      expect(mine.lastHeartbeatAt).toBeInstanceOf(Date);
      expect(workers.filter((w) => w.id !== w1).every((w) => w.doing === 0)).toBe(true);
      expect(doing).toBeGreaterThan(0);
    });

    it("listJobs filters and paginates newest first by id", async () => {
      const ids: number[] = [];
      for (let i = 0; i < 12; i++)
        ids.push(
          await defer({
            queue: i % 2 ? "odd" : "even",
            task: i % 3 ? "t" : "t3",
            lock: i < 4 ? "L" : undefined,
            queueingLock: i === 5 ? "Q" : undefined,
          }),
        );
      const cancelled = ids[7]!;
      await jm().cancelJob(cancelled);

      const all = await jm().listJobs();
      expect(all.map((j) => j.id)).toEqual([...ids].reverse());
      expect((await jm().listJobs({ queue: "odd" })).map((j) => j.id)).toEqual(
        ids.filter((_, i) => i % 2).reverse(),
      );
      expect((await jm().listJobs({ task: "t3" })).map((j) => j.id)).toEqual(
        ids.filter((_, i) => i % 3 === 0).reverse(),
      );
      expect((await jm().listJobs({ status: "cancelled" })).map((j) => j.id)).toEqual([cancelled]);
      expect(await jm().listJobs({ status: ["cancelled", "todo"] })).toHaveLength(12);
      expect(await jm().listJobs({ status: [] })).toEqual([]);
      expect((await jm().listJobs({ lock: "L" })).map((j) => j.id)).toEqual(ids.slice(0, 4).reverse());
      expect((await jm().listJobs({ queueingLock: "Q" })).map((j) => j.id)).toEqual([ids[5]]);
      expect((await jm().listJobs({ id: ids[3] })).map((j) => j.id)).toEqual([ids[3]]);
      expect(await jm().listJobs({ queue: "odd", task: "t3", status: "todo" })).toHaveLength(2);

      // Keyset pagination: pages of 5, following beforeId, cover everything once.
      const pages: number[][] = [];
      let beforeId: number | undefined;
      for (;;) {
        const page = await jm().listJobs({ limit: 5, beforeId });
        if (page.length === 0) break;
        pages.push(page.map((j) => j.id));
        beforeId = page.at(-1)!.id;
      }
      expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
      expect(pages.flat()).toEqual([...ids].reverse());
      expect((await jm().listJobs({ beforeId: ids[2], queue: "even" })).map((j) => j.id)).toEqual([ids[0]]);
    });

    it("deleteOldJobs deletes finished jobs older than the limit, by status", async () => {
      const succeeded = await finished("succeeded");
      const failed = await finished("failed");
      const cancelled = await finished("cancelled");
      const recent = await finished("succeeded");
      const todo = await defer();
      await sql(
        app(),
        "UPDATE {schema}.jobs SET finished_at = now() - interval '3 hours' WHERE id = ANY ($1)",
        [[succeeded, failed, cancelled]],
      );
      expect(await jm().deleteOldJobs({ olderThanHours: 4 })).toBe(0);
      expect(await jm().deleteOldJobs({ olderThanHours: 2, statuses: ["failed"] })).toBe(1);
      expect(await jm().getJob(failed)).toBeNull();
      expect(await jm().deleteOldJobs({ olderThanHours: 2 })).toBe(2);
      expect(idsOf(await jm().listJobs())).toEqual([recent, todo]);
      expect(await jm().deleteOldJobs({ olderThanHours: 0 })).toBe(1);
      expect(idsOf(await jm().listJobs())).toEqual([todo]);
    });
    it("deleteOldJobs honours fractional hours (never deletes younger jobs)", async () => {
      const tenMinutes = await finished("succeeded");
      const fortyMinutes = await finished("succeeded");
      await sql(app(), "UPDATE {schema}.jobs SET finished_at = now() - interval '10 minutes' WHERE id = $1", [
        tenMinutes,
      ]);
      await sql(app(), "UPDATE {schema}.jobs SET finished_at = now() - interval '40 minutes' WHERE id = $1", [
        fortyMinutes,
      ]);
      expect(await jm().deleteOldJobs({ olderThanHours: 0.5 })).toBe(1);
      expect(idsOf(await jm().listJobs())).toEqual([tenMinutes]);
    });
  });

  describe("waitForJob", () => {
    it("resolves with the result when the job succeeds", async () => {
      const { id, run } = await doingJob();
      const waiting = jm().waitForJob(id, { timeoutMs: 20_000 });
      await jm().completeJobs([{ id, run, result: { answer: 42 } }]);
      expect(await waiting).toEqual({ id, status: "succeeded", result: { answer: 42 }, error: null });
    });

    it("resolves with the error when the job fails, and at once for a finished job", async () => {
      const { id, ref } = await doingJob();
      const waiting = jm().waitForJob(id, { timeoutMs: 20_000 });
      const alsoWaiting = jm().waitForJob(id, { timeoutMs: 20_000 });
      await jm().failJob(ref, { status: "failed", error });
      expect(await waiting).toEqual({ id, status: "failed", result: null, error });
      expect(await alsoWaiting).toMatchObject({ status: "failed" });
      expect(await jm().waitForJob(id, { timeoutMs: 1 })).toMatchObject({ status: "failed" });
    });

    it("resolves when a todo job is cancelled, and waits across a retry", async () => {
      const id = await defer();
      const waiting = jm().waitForJob(id, { timeoutMs: 20_000 });
      await jm().cancelJob(id);
      expect(await waiting).toMatchObject({ id, status: "cancelled" });

      const { id: retried, worker, ref } = await doingJob();
      const untilDone = jm().waitForJob(retried, { timeoutMs: 20_000 });
      await jm().failJob(ref, { status: "todo", error, retry: { at: new Date() } });
      const [again] = await jm().fetchJobs(worker, null, 1);
      expect(again!.id).toBe(retried);
      await jm().completeJobs([{ id: retried, run: again!.run, result: "second" }]);
      expect(await untilDone).toMatchObject({ status: "succeeded", result: "second" });
    });

    /**
     * Resolves once a waitForJob call has read the job's current state (its first check,
     * made after LISTEN is in place): from then on, only a notification can settle it.
     */
    async function waiterReady(spy: MockInstance<Connector["query"]>, before: number): Promise<void> {
      await vi.waitFor(
        () => {
          const checked = spy.mock.calls.some(
            ([text], i) =>
              i >= before &&
              /status, result, error/.test(text) &&
              spy.mock.settledResults[i]?.type === "fulfilled",
          );
          if (!checked) throw new Error("the waiter has not checked the job yet");
        },
        { timeout: 10_000, interval: 5 },
      );
    }

    it("resolves with the status when the job is deleted on cancel or completion", async () => {
      // Deleted before the waiter's first check, the job would simply be unknown: wait for it.
      const spy = vi.spyOn(app().connector, "query");
      try {
        const id = await defer();
        const waiting = jm().waitForJob(id, { timeoutMs: 20_000 });
        await waiterReady(spy, 0);
        await jm().cancelJob(id, { delete: true });
        expect(await waiting).toEqual({ id, status: "cancelled", result: null, error: null });

        const { id: done, run } = await doingJob();
        const before = spy.mock.calls.length;
        const untilDone = jm().waitForJob(done, { timeoutMs: 20_000 });
        await waiterReady(spy, before);
        await jm().completeJobs([{ id: done, run, result: 1 }], true);
        expect(await untilDone).toMatchObject({ id: done, status: "succeeded" });
      } finally {
        spy.mockRestore();
      }
    });

    it("rejects with WaitTimeout when the job does not finish in time", async () => {
      const id = await defer();
      const failure = await jm()
        .waitForJob(id, { timeoutMs: 100 })
        .catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(WaitTimeout);
      expect(failure).toMatchObject({ code: "WAIT_TIMEOUT", jobId: id });
    });

    it("rejects with JobNotFound for an unknown id", async () => {
      const failure = await jm()
        .waitForJob(123_456, { timeoutMs: 5_000 })
        .catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(JobNotFound);
      expect(failure).toMatchObject({ code: "JOB_NOT_FOUND", jobId: 123_456 });
    });
  });

  describe("periodic dedup", () => {
    const job = (queueingLock: string | null = null): NewJob => ({
      task: "tick",
      queue: "periodic",
      priority: 1,
      lock: null,
      queueingLock,
      args: { timestamp: 0 },
      scheduledAt: null,
    });

    it("defers each tick once; lastPeriodicTick follows the latest", async () => {
      expect(await jm().lastPeriodicTick("tick", "every-minute")).toBeNull();
      const id = await jm().deferPeriodicJob("every-minute", 1_700_000_000, job());
      expect(id).toEqual(expect.any(Number));
      expect(await jm().deferPeriodicJob("every-minute", 1_700_000_000, job())).toBeNull();
      expect(await getJob(app(), id!)).toMatchObject({ task: "tick", queue: "periodic", priority: 1 });
      expect(await jm().lastPeriodicTick("tick", "every-minute")).toBe(1_700_000_000);

      // Another periodic id of the same task is independent.
      expect(await jm().deferPeriodicJob("hourly", 1_700_000_000, job())).toEqual(expect.any(Number));
      expect(await jm().deferPeriodicJob("every-minute", 1_700_000_060, job())).toEqual(expect.any(Number));
      expect(await jm().lastPeriodicTick("tick", "every-minute")).toBe(1_700_000_060);
      expect(await jm().listJobs()).toHaveLength(3);
    });

    it("racing schedulers defer one job per tick", async () => {
      const results = await Promise.all(
        Array.from({ length: 8 }, () => jm().deferPeriodicJob("race", 1_700_000_120, job())),
      );
      expect(results.filter((r) => r !== null)).toHaveLength(1);
      expect(await jm().listJobs()).toHaveLength(1);
    });

    it("a tick whose queueing lock is taken is skipped, not retried", async () => {
      await defer({ task: "tick", queueingLock: "only-one" });
      expect(await jm().deferPeriodicJob("p", 1_700_000_180, job("only-one"))).toBeNull();
      expect(await jm().lastPeriodicTick("tick", "p")).toBe(1_700_000_180);
      expect(await jm().listJobs()).toHaveLength(1);
    });
  });
});
