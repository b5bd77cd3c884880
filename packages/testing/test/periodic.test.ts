import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type TestApp, createTestApp, deferredJobs, expectDeferred, runUntilIdle } from "../src/index.js";
import { app, dailyReport, reports } from "./fixtures/app.js";
import { cacheDir } from "./helpers.js";

// The app module schedules dailyReport at 09:00 UTC every day.
const day = (n: number) => `2030-01-0${n}T09:00:00.000Z`;
const seconds = (iso: string) => Date.parse(iso) / 1000;

let t: TestApp<typeof app>;
beforeAll(async () => {
  t = await createTestApp(app, { cacheDir, now: new Date("2030-01-01T08:00:00Z") });
});
afterAll(() => t.close());
beforeEach(() => {
  reports.length = 0;
});

describe("periodic tasks on the test clock", () => {
  it("moving the clock defers one job per tick it passes, each with its tick", async () => {
    await expectDeferred(dailyReport, {}, { count: 0 });

    await t.clock.advance({ days: 3 });

    const jobs = await expectDeferred(dailyReport, {}, { count: 3 });
    expect(jobs.map((j) => j.args.timestamp)).toEqual([1, 2, 3].map((n) => seconds(day(n))));
    // Deferred as the scheduler reached each tick.
    expect(jobs.map((j) => j.createdAt.toISOString())).toEqual([day(1), day(2), day(3)]);

    const result = await runUntilIdle(app);
    expect(result.runs.map((r) => r.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    // Without `advance`, they all run now: at the clock's time.
    expect(reports).toEqual([1, 2, 3].map((n) => ({ tick: day(n), ranAt: "2030-01-04T08:00:00.000Z" })));
  });

  it("runUntilIdle with advance runs each tick at its own time", async () => {
    const result = await runUntilIdle(app, { advance: { days: 2 } });

    expect(result.runs.map((r) => r.job.task)).toEqual(["daily_report", "daily_report"]);
    expect(reports).toEqual([4, 5].map((n) => ({ tick: day(n), ranAt: day(n) })));
    expect(new Date().toISOString()).toBe("2030-01-06T08:00:00.000Z");
  });

  it("defers each tick once, though every worker of runUntilIdle runs the scheduler too", async () => {
    await t.clock.set(new Date(day(6)));
    await runUntilIdle(app);
    await runUntilIdle(app);
    const all = await deferredJobs(dailyReport, {}, { status: ["todo", "doing", "succeeded", "failed"] });
    expect(all.map((j) => j.args.timestamp)).toEqual([1, 2, 3, 4, 5, 6].map((n) => seconds(day(n))));
  });
});

describe("scheduled jobs and the clock", () => {
  it("Date, the database and the jobs agree on the clock's time", async () => {
    await t.clock.set(new Date("2030-02-01T12:00:00Z"));
    await runUntilIdle(app); // the daily reports of January
    const now = t.clock.now();
    expect(Date.now()).toBe(now);
    const [row] = await t.connector.query<{ now: Date }>("SELECT now() AS now");
    expect(new Date(row!.now).getTime()).toBe(now);

    const id = await dailyReport.configure({ scheduleIn: { minutes: 5 } }).defer({ timestamp: 0 });
    const job = await app.jobManager.getJob(id);
    expect(job?.createdAt.getTime()).toBe(now);
    expect(job?.scheduledAt?.getTime()).toBe(now + 5 * 60_000);

    expect((await runUntilIdle(app, { advance: { minutes: 4 } })).runs).toEqual([]);
    expect((await runUntilIdle(app, { advance: { minutes: 1 } })).runs.map((r) => r.job.id)).toEqual([id]);
    expect(reports.at(-1)?.ranAt).toBe("2030-02-01T12:05:00.000Z");
  });
});

describe("a schedule added to a running test app", () => {
  it("counts from the clock's time when the clock next moves (or runUntilIdle runs)", async () => {
    await t.clock.set(new Date("2030-02-01T13:00:00Z"));
    const every15 = app.task({ name: "every_15_minutes" }, async (_args: { timestamp: number }) => {});
    app.periodic({ cron: "*/15 * * * *" }, every15);

    await t.clock.advance({ hours: 1 });

    // First seen at 13:00, a tick itself: as with a scheduler started at that instant, it is due.
    const ticks = (await deferredJobs(every15)).map((j) => new Date(j.args.timestamp * 1000).toISOString());
    expect(ticks).toEqual(
      ["13:00", "13:15", "13:30", "13:45", "14:00"].map((h) => `2030-02-01T${h}:00.000Z`),
    );
  });
});
