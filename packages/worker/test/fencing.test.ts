// Fencing (issue 11): every claim of a job is a distinct run; once a job was recovered
// or claimed again, the old run's outcome is refused and logged as stale_outcome, its
// ctx.signal aborts with JobRecoveredError, and a worker never holds two runs of one job.
import type { App } from "@proc/core";
import {
  type TestApp,
  backends,
  createTestApp,
  recordingLogger,
  registerWorker,
  waitFor,
} from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { JobRecoveredError, Worker } from "../src/index.js";

describe.each(backends())("fencing on %s", (backend) => {
  let t: TestApp;
  let app: App;
  const workers: Worker[] = [];

  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stopNow()));
    await t.dispose();
  });

  /** A task whose runs wait to be released by the test (or aborted), recording each run. */
  function gatedTask() {
    const runs: Array<{ run: number; start: number; end?: number; reason?: unknown }> = [];
    const gates = new Map<number, () => void>();
    const task = app.task({ name: "gated" }, async (_args: Record<string, never>, ctx) => {
      const entry: (typeof runs)[number] = { run: ctx.job.run, start: performance.now() };
      runs.push(entry);
      try {
        await new Promise<void>((resolve) => {
          gates.set(ctx.job.run, resolve);
          ctx.signal.addEventListener("abort", () => {
            entry.reason = ctx.signal.reason;
            // A task that ignores its signal a little while: still, the outcome it
            // then returns must be refused.
            setTimeout(resolve, 100);
          });
        });
        return { run: ctx.job.run };
      } finally {
        entry.end = performance.now();
      }
    });
    return { task, runs, open: (run: number) => gates.get(run)?.() };
  }

  it("a run whose job was recovered and claimed again by the same worker is aborted; its outcome is refused", async () => {
    const { task, runs, open } = gatedTask();
    const id = await task.defer({});
    const logger = recordingLogger();
    const worker = new Worker(app, { handleSignals: false, pollInterval: 100, concurrency: 2, logger });
    workers.push(worker);
    void worker.run();
    await waitFor(() => runs.length === 1, { what: "run 1 started" });
    // The stalled-job checker judged this worker dead (say, after a partition):
    const doing = (await app.jobManager.getJob(id))!;
    expect(doing).toMatchObject({ status: "doing", run: 1 });
    expect(await app.jobManager.retryJob(doing)).toMatchObject({ status: "todo" });
    // The same worker claims the job again (run 2): run 1 is aborted first, and run 2
    // starts only once run 1 is over.
    await waitFor(() => runs.length === 2, { what: "run 2 started" });
    expect(runs[0]!.reason).toBeInstanceOf(JobRecoveredError);
    expect(runs[0]!.end).toBeDefined();
    expect(runs[1]!.start).toBeGreaterThanOrEqual(runs[0]!.end!);
    await waitFor(() => logger.records.some((r) => r.action === "stale_outcome"), { what: "stale_outcome" });
    expect(logger.records.find((r) => r.action === "stale_outcome")!.fields).toMatchObject({
      jobId: id,
      run: 1,
    });
    open(2);
    await waitFor(async () => (await app.jobManager.getJob(id))!.status === "succeeded", {
      what: "succeeded",
    });
    const done = (await app.jobManager.getJob(id))!;
    expect(done).toMatchObject({ result: { run: 2 }, run: 2, stalledCount: 1 });
    expect(done.events.filter((e) => e.type === "succeeded")).toHaveLength(1);
  });

  it("the heartbeat tells a worker that a run was recovered elsewhere: the run aborts, its outcome is refused", async () => {
    const { task, runs } = gatedTask();
    const id = await task.defer({});
    const logger = recordingLogger();
    const worker = new Worker(app, {
      handleSignals: false,
      pollInterval: 60_000,
      heartbeatInterval: 100,
      queues: ["default"],
      logger,
    });
    workers.push(worker);
    void worker.run();
    await waitFor(() => runs.length === 1, { what: "run 1 started" });
    // Recovered, then claimed by another worker (which this one is not told about).
    await app.jobManager.retryJob((await app.jobManager.getJob(id))!);
    const other = await registerWorker(app, "other");
    const [claimed] = await app.jobManager.fetchJobs(other, null, 1);
    expect(claimed).toMatchObject({ id, run: 2 });
    await waitFor(() => runs[0]!.end !== undefined, { what: "run 1 aborted by the heartbeat" });
    expect(runs[0]!.reason).toBeInstanceOf(JobRecoveredError);
    expect(String((runs[0]!.reason as Error).message)).toContain("recovered elsewhere");
    await waitFor(() => logger.records.some((r) => r.action === "stale_outcome"), { what: "stale_outcome" });
    // Run 1's late outcome changed nothing: the job is still run 2's, which completes.
    expect(await app.jobManager.getJob(id)).toMatchObject({ status: "doing", run: 2, workerId: other });
    expect(await app.jobManager.completeJobs([{ id, run: 2, result: "elsewhere" }])).toEqual([id]);
    expect(await app.jobManager.getJob(id)).toMatchObject({ status: "succeeded", result: "elsewhere" });
    expect(runs).toHaveLength(1);
  });
});
