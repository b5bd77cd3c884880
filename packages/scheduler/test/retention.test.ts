// Retention: finished jobs deleted once old enough, by status and queue, in bounded batches,
// by a service every worker runs; todo and doing jobs are never touched.
import { type App, InvalidOptions } from "@proc/core";
import {
  type TestApp,
  backends,
  createTestApp,
  recordingLogger,
  startService,
  waitFor,
} from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deleteExpiredJobs, scheduler } from "../src/index.js";

describe.each(backends())("retention on %s", (backend) => {
  let t: TestApp;
  let app: App;

  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
  });
  afterEach(() => t.dispose());

  /** A job of `queue` with `status`, finished (or, for todo/doing, stamped) `hoursAgo` hours ago. */
  async function job(queue: string, status: string, hoursAgo: number): Promise<number> {
    const [row] = await app.connector.query<{ id: string }>(
      `INSERT INTO proc.jobs (queue_name, task_name, status, attempts, finished_at, created_at)
       VALUES ($1, 't', $2::proc.job_status, 1, now() - make_interval(hours => $3), now() - make_interval(hours => $3))
       RETURNING id`,
      [queue, status, hoursAgo],
    );
    return Number(row!.id);
  }
  const remaining = async () =>
    (await app.connector.query<{ id: string }>("SELECT id FROM proc.jobs ORDER BY id")).map((r) =>
      Number(r.id),
    );

  it("deletes each status once older than its age, with per-queue rules, and never todo or doing", async () => {
    const oldOk = await job("default", "succeeded", 30);
    const newOk = await job("default", "succeeded", 1);
    const oldFailed = await job("default", "failed", 30);
    const olderFailed = await job("default", "failed", 24 * 40);
    const oldCancelled = await job("default", "cancelled", 30);
    const auditOk = await job("audit", "succeeded", 24 * 400);
    const mailOk = await job("mail", "succeeded", 2);
    const todo = await job("default", "todo", 24 * 400);
    const doing = await job("default", "doing", 24 * 400);
    const deleted = await deleteExpiredJobs(app, {
      succeeded: "1d",
      failed: "30d",
      // cancelled and aborted: not named, kept forever
      queues: { audit: { succeeded: null }, mail: { succeeded: 3_600_000 } },
    });
    expect(deleted).toEqual({ succeeded: 2, failed: 1 });
    expect(await remaining()).toEqual([newOk, oldFailed, oldCancelled, auditOk, todo, doing]);
    expect([oldOk, olderFailed, mailOk].every((id) => id > 0)).toBe(true);
  });

  it("deletes in bounded batches, and the scheduler's service runs it on every worker", async () => {
    for (let i = 0; i < 9; i++) await job("default", "succeeded", 48);
    const kept = await job("default", "succeeded", 0);
    // One statement deletes at most its limit.
    expect(
      await app.jobManager.deleteFinishedJobs({ status: "succeeded", olderThanMs: 86_400_000, limit: 2 }),
    ).toBe(2);
    await expect(
      app.jobManager.deleteFinishedJobs({ status: "doing", olderThanMs: 0, limit: 2 }),
    ).rejects.toThrow("a job that is doing has not finished");
    const plugged = new (await import("@proc/core")).App({ connector: app.connector }).use(
      scheduler({ retention: { succeeded: "1d", batchSize: 3, interval: 60_000 } }),
    );
    expect(plugged.workerServices.map((s) => s.name)).toEqual(["scheduler", "retention"]);
    const log = recordingLogger();
    const service = startService(plugged, "retention", log);
    try {
      await waitFor(async () => (await remaining()).length === 1);
      expect(await remaining()).toEqual([kept]);
      await waitFor(() => log.records.some((r) => r.action === "retention_deleted"));
      expect(log.records.find((r) => r.action === "retention_deleted")?.fields).toMatchObject({
        deleted: { succeeded: 7 },
      });
    } finally {
      await service.stop();
    }
  });

  it("refuses bad rules, naming every one", () => {
    let caught: unknown;
    try {
      scheduler({
        retention: {
          succeeded: "2 weeks" as never,
          failed: -1,
          queues: { q: { done: "1d" } as never },
          batchSize: 0,
        },
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidOptions);
    const message = (caught as Error).message;
    expect(message).toContain('succeeded: an age in ms or a string such as "30s"');
    expect(message).toContain("failed: an age in ms");
    expect(message).toContain("queues.q.done: unknown status");
    expect(message).toContain("batchSize: an integer from 1 to 100000");
  });
});
