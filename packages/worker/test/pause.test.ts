// Pausing a queue under load: workers stop starting its jobs within a second (prefetched ones
// are given back on the pause notification), running ones finish, other queues go on, nothing
// is lost or run twice, and a resume drains the rest.
import type { App } from "@proc/core";
import { type TestApp, backends, createTestApp, waitFor } from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Worker } from "../src/index.js";

describe.each(backends())("pausing a queue on %s", (backend) => {
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

  it("stops starting the queue's jobs within 1 s, loses none, and resumes", async () => {
    const starts: Array<{ id: number; queue: string; at: number }> = [];
    const handler = async (_args: Record<string, never>, ctx: { job: { id: number; queue: string } }) => {
      starts.push({ id: ctx.job.id, queue: ctx.job.queue, at: performance.now() });
      await new Promise((r) => setTimeout(r, 20));
    };
    const email = app.task({ name: "email", queue: "emails" }, handler);
    const report = app.task({ name: "report", queue: "reports" }, handler);
    await email.batchDefer(Array.from({ length: 2000 }, () => ({})));
    for (let i = 0; i < 2; i++) {
      const worker = new Worker(app, { concurrency: 10, handleSignals: false, pollInterval: 5000 });
      workers.push(worker);
      void worker.run();
    }
    await waitFor(() => starts.length >= 30);
    await app.jobManager.pauseQueue("emails");
    const pausedAt = performance.now();
    await new Promise((r) => setTimeout(r, 1500));
    const late = starts.filter((s) => s.queue === "emails" && s.at > pausedAt + 1000);
    expect(late).toEqual([]);
    // Deferring still works; other queues still run.
    await email.batchDefer(Array.from({ length: 10 }, () => ({})));
    const reports = await report.batchDefer([{}, {}, {}]);
    await waitFor(() => reports.every((id) => starts.some((s) => s.id === id)));
    expect(starts.filter((s) => s.queue === "emails" && s.at > pausedAt + 1000)).toEqual([]);
    // Without the pause the 2,000 jobs (20 slots × 20 ms each) would still be starting now.
    const before = starts.filter((s) => s.queue === "emails").length;
    expect(before).toBeLessThan(2000);

    await app.jobManager.resumeQueue("emails");
    await waitFor(async () => (await app.jobManager.listJobs({ status: ["todo", "doing"] })).length === 0, {
      timeoutMs: 30_000,
    });
    const emailStarts = starts.filter((s) => s.queue === "emails").map((s) => s.id);
    expect(emailStarts).toHaveLength(2010);
    expect(new Set(emailStarts).size).toBe(2010);
    const statuses = new Set((await app.jobManager.listJobs({ limit: 5000 })).map((j) => j.status));
    expect(statuses).toEqual(new Set(["succeeded"]));
  });
});
