// Flow control seen from one worker, on both connectors: limited jobs run within their
// limits and all run, a held job starts when a slot or its window frees (not a poll
// later), and the worker's expiry sweep ends the expired jobs no claim reaches.
import type { App } from "@proc/core";
import { type TestApp, backends, createTestApp, waitFor } from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Worker } from "../src/index.js";

describe.each(backends())("flow control in a worker on %s", (backend) => {
  let t: TestApp;
  let app: App;
  const workers: Worker[] = [];
  const start = (options: ConstructorParameters<typeof Worker>[1]) => {
    const worker = new Worker(app, { handleSignals: false, pollInterval: 60_000, ...options });
    workers.push(worker);
    void worker.run();
    return worker;
  };

  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stopNow()));
    await t.dispose();
  });

  it("runs every job of a key, never more than its limit at once, without waiting for a poll", async () => {
    let running = 0;
    let most = 0;
    const done: number[] = [];
    const task = app.task(
      {
        name: "export",
        concurrencyKey: (a: { customer: number }) => `customer:${a.customer}`,
        concurrencyLimit: 2,
      },
      async ({ customer }, ctx) => {
        if (customer === 1) most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 15));
        if (customer === 1) running--;
        done.push(ctx.job.id);
      },
    );
    const ids = await task.batchDefer([
      ...Array.from({ length: 20 }, () => ({ customer: 1 })),
      ...Array.from({ length: 5 }, () => ({ customer: 2 })),
    ]);
    // The poll is a minute away: every start after the first claim comes from a freed slot.
    start({ concurrency: 10 });
    await waitFor(() => done.length === ids.length, { timeoutMs: 20_000 });
    expect(most).toBe(2);
    expect(new Set(done)).toEqual(new Set(ids));
  });

  it("one-shot runs every job of limited keys before it stops", async () => {
    let done = 0;
    const task = app.task(
      { name: "sync", concurrencyKey: (a: { k: number }) => `k${a.k}`, concurrencyLimit: 2 },
      async () => {
        done++;
      },
    );
    await task.batchDefer(Array.from({ length: 300 }, (_, i) => ({ k: i % 30 })));
    // No-op jobs: slots free during every claim's round trip, the race that once stopped
    // a one-shot worker with held jobs left.
    const worker = new Worker(app, { handleSignals: false, concurrency: 10, wait: false });
    await worker.run();
    expect(done).toBe(300);
    expect(await app.jobManager.listJobs({ status: ["todo"] })).toEqual([]);
  });

  it("a rate-limited job starts when its window opens, on the worker's own timer", async () => {
    const starts: number[] = [];
    const task = app.task({ name: "call_api", rateLimit: { max: 2, per: 300 } }, async () => {
      starts.push(Date.now());
    });
    const ids = await task.batchDefer(Array.from({ length: 6 }, () => ({})));
    start({ concurrency: 5 });
    await waitFor(async () => (await app.jobManager.listJobs({ status: ["todo"] })).length === 0, {
      timeoutMs: 20_000,
    });
    await waitFor(() => starts.length === ids.length);
    const claimed = (await app.jobManager.listJobs({ limit: 10 }))
      .map((j) => j.startedAt!.getTime())
      .sort((a, b) => a - b);
    for (let i = 0; i + 2 < claimed.length; i++)
      expect(claimed[i + 2]! - claimed[i]!).toBeGreaterThanOrEqual(299);
  });

  it("ends expired jobs that no claim reaches", async () => {
    const id = await app
      .configureTask("elsewhere", {
        allowUnknown: true,
        queue: "nobody-listens",
        expireAt: new Date(Date.now() - 1),
      })
      .defer({});
    start({ queues: ["other"], expiryInterval: 50 });
    await waitFor(async () => (await app.jobManager.getJob(id))?.status === "cancelled");
    const job = await app.jobManager.getJob(id);
    expect(job!.events.at(-1)).toMatchObject({ type: "cancelled", reason: "expired" });
  });
});
