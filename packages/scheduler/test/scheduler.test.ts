import { App, type Connector, type Job } from "@proc/core";
import { backends, createTestApp } from "@proc/fixtures";
import { afterEach, describe, expect, it, vi } from "vitest";
import { periodic, scheduler } from "../src/index.js";
import { type LogRecord, recordingLogger, startService } from "@proc/fixtures";

const EVERY_SECOND = "* * * * * *";

function timestamps(jobs: Job[]): number[] {
  return jobs.map((j) => (j.args as { timestamp: number }).timestamp).sort((a, b) => a - b);
}

/** Ticks of an every-second schedule: no tick twice, none skipped in between. */
function expectConsecutive(ticks: number[]): void {
  expect(new Set(ticks).size).toBe(ticks.length);
  for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBe(1);
}

const actions = (records: LogRecord[], action: string) => records.filter((r) => r.action === action);

describe("registration", () => {
  // Registration needs no database: a connector that is never called.
  const offline = () =>
    new App({
      connector: { query: async () => [] } as unknown as Connector,
      logger: recordingLogger(),
    }).use(scheduler());

  it("adds app.periodic and returns a handle", () => {
    const app = offline();
    const task = app.task({ name: "report" }, async (_args: { timestamp: number }) => {});
    const handle = app.periodic({ cron: "0 9 * * *", timezone: "Europe/Paris", periodicId: "daily" }, task);
    expect(handle).toMatchObject({
      taskName: "report",
      periodicId: "daily",
      cron: "0 9 * * *",
      timezone: "Europe/Paris",
    });
    expect(handle.nextTick(new Date("2024-07-15T00:00:00Z")).toISOString()).toBe("2024-07-15T07:00:00.000Z");
    expect(app.workerServices.map((s) => s.name)).toEqual(["scheduler"]);
    const weekly = app.periodic({ cron: "0 9 * * 1", periodicId: "weekly" }, task);
    expect(app.periodicSchedules()).toEqual([handle, weekly]);
  });

  it("rejects an invalid cron expression, quoting it", () => {
    const app = offline();
    const task = app.task({ name: "t" }, async () => {});
    expect(() => app.periodic({ cron: "61 * * * *" }, task)).toThrow(
      /invalid periodic task "t" options:[\s\S]*"61 \* \* \* \*" is not a valid cron expression/,
    );
  });

  it("rejects a second schedule with the same (task, periodicId), allows another periodicId", () => {
    const app = offline();
    const task = app.task({ name: "t" }, async () => {});
    app.periodic({ cron: "* * * * *" }, task);
    expect(() => app.periodic({ cron: "*/5 * * * *" }, task)).toThrow(/already scheduled with periodicId ""/);
    expect(() => app.periodic({ cron: "*/5 * * * *", periodicId: "b" }, task)).not.toThrow();
  });

  it("rejects bad options, every problem at once", () => {
    const app = offline();
    const task = app.task({ name: "t", queueingLock: "t" }, async () => {});
    let error: unknown;
    try {
      app.periodic({ cron: "* *", timezone: "Nowhere", maxDelay: -1, args: { timestamp: 3 } as never }, task);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "INVALID_OPTIONS" });
    expect((error as { problems: string[] }).problems).toEqual([
      expect.stringMatching(/^timezone:/),
      expect.stringMatching(/^cron: "\* \*" has 2 field/),
      expect.stringMatching(/^maxDelay/),
      expect.stringMatching(/args.timestamp is reserved/),
    ]);
    expect(() => app.periodic({ cron: "* * * * *", priority: 1.5 }, task)).toThrow(/priority/);
  });

  it("rejects a task of another app", () => {
    const app = offline();
    const other = offline();
    const task = other.task({ name: "t" }, async () => {});
    expect(() => app.periodic({ cron: "* * * * *" }, task)).toThrow(/registered on this app/);
    expect(() => app.periodic({ cron: "* * * * *" }, undefined as never)).toThrow(/registered on this app/);
  });

  it("periodic(app, ...) works with the plugin and explains how to add it without", () => {
    const app = offline();
    const task = app.task({ name: "t" }, async () => {});
    expect(periodic(app, { cron: "* * * * *" }, task).taskName).toBe("t");
    const bare = new App({ connector: { query: async () => [] } as unknown as Connector });
    const orphan = bare.task({ name: "t" }, async () => {});
    expect(() => periodic(bare, { cron: "* * * * *" }, orphan)).toThrow(/app\.use\(scheduler\(\)\)/);
  });

  it("validates the plugin's options", () => {
    expect(() => scheduler({ maxSleep: 0, maxDelay: Number.NaN })).toThrow(/maxSleep[\s\S]*maxDelay/);
  });
});

describe.each(backends())("scheduler service (%s)", (backend) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(options: Parameters<typeof scheduler>[0] = {}) {
    const t = await createTestApp(backend);
    cleanups.push(t.dispose);
    return { ...t, app: t.app.use(scheduler(options)) };
  }

  it("defers exactly one job per tick, with the tick as timestamp and the static args", async () => {
    const { app } = await setup();
    const task = app.task(
      { name: "tick", queue: "ticks", priority: 3 },
      async (_args: { timestamp: number; kind: string }) => {},
    );
    app.periodic({ cron: EVERY_SECOND, args: { kind: "heartbeat" } }, task);
    const logger = recordingLogger();
    const deferred: number[] = [];
    app.on("job:deferred", ({ ids }) => deferred.push(...ids));
    const started = Math.floor(Date.now() / 1000);
    const service = startService(app, "scheduler", logger);
    cleanups.push(service.stop);
    await vi.waitFor(
      async () => expect((await app.jobManager.listJobs({ task: "tick" })).length).toBeGreaterThanOrEqual(3),
      {
        timeout: 8_000,
        interval: 100,
      },
    );
    await service.stop();

    const jobs = await app.jobManager.listJobs({ task: "tick" });
    const ticks = timestamps(jobs);
    expectConsecutive(ticks);
    expect(ticks[0]).toBeGreaterThanOrEqual(started - 1);
    expect(jobs.every((j) => j.queue === "ticks" && j.priority === 3)).toBe(true);
    expect(jobs[0]!.args).toEqual({ kind: "heartbeat", timestamp: expect.any(Number) });
    expect(actions(logger.records, "periodic_defer")).toHaveLength(jobs.length);
    expect(actions(logger.records, "periodic_defer")[0]!.fields).toMatchObject({
      task: "tick",
      periodicId: "",
      tick: ticks[0],
    });
    expect(deferred.sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(await app.jobManager.lastPeriodicTick("tick", "")).toBe(ticks.at(-1));
  });

  it("three schedulers on one database defer each tick exactly once", async () => {
    const { app, db } = await setup();
    const schedule = (target: typeof app) =>
      target.periodic(
        { cron: EVERY_SECOND },
        target.task({ name: "dedup" }, async (_args: { timestamp: number }) => {}),
      );
    schedule(app);
    const loggers = [recordingLogger(), recordingLogger(), recordingLogger()];
    // Postgres: three apps with their own connectors, as three processes would have.
    // PGlite is one in-process database: three runs of the service share its app, as
    // three workers in one process would.
    const apps = [app];
    if (backend === "pg") {
      for (let i = 0; i < 2; i++) {
        const other = new App({ connector: db.connector(), logger: loggers[i + 1]! }).use(scheduler());
        schedule(other);
        await other.open();
        cleanups.push(() => other.close());
        apps.push(other);
      }
    }
    const services = loggers.map((logger, i) => startService(apps[i] ?? app, "scheduler", logger, i + 1));
    for (const s of services) cleanups.push(s.stop);
    await vi.waitFor(
      async () => expect((await app.jobManager.listJobs({ task: "dedup" })).length).toBeGreaterThanOrEqual(4),
      { timeout: 9_000, interval: 100 },
    );
    await Promise.all(services.map((s) => s.stop()));

    const ticks = timestamps(await app.jobManager.listJobs({ task: "dedup" }));
    expectConsecutive(ticks);
    const all = loggers.flatMap((l) => l.records);
    expect(actions(all, "periodic_defer")).toHaveLength(ticks.length);
    // Every scheduler tried the ticks; the database turned the losers away.
    expect(actions(all, "periodic_already_deferred").length).toBeGreaterThan(0);
    expect(all.filter((r) => r.level === "error" || r.level === "warn")).toEqual([]);
  });

  it("after a restart, catches up missed ticks within maxDelay and skips older ones", async () => {
    const { app } = await setup();
    const task = app.task({ name: "minutely" }, async (_args: { timestamp: number }) => {});
    app.periodic({ cron: "* * * * *" }, task); // default maxDelay: 10 minutes
    // The last tick deferred before the "downtime", 30 minutes ago.
    const start = Math.floor(Date.now() / 1000);
    const lastRun = Math.floor(start / 60) * 60 - 30 * 60;
    const job = {
      task: "minutely",
      queue: "default",
      priority: 0,
      lock: null,
      queueingLock: null,
      args: { timestamp: lastRun },
      scheduledAt: null,
    };
    await app.jobManager.deferPeriodicJob("", lastRun, job);

    const logger = recordingLogger();
    const service = startService(app, "scheduler", logger);
    cleanups.push(service.stop);
    // A 10-minute window always holds at least 10 minute ticks.
    await vi.waitFor(
      async () =>
        expect((await app.jobManager.listJobs({ task: "minutely" })).length).toBeGreaterThanOrEqual(11),
      { timeout: 8_000, interval: 100 },
    );
    await service.stop();
    const end = Math.ceil(Date.now() / 1000);

    const caughtUp = timestamps(await app.jobManager.listJobs({ task: "minutely" })).filter(
      (t) => t !== lastRun,
    );
    for (const t of caughtUp) {
      expect(t % 60).toBe(0);
      expect(t).toBeGreaterThanOrEqual(start - 600 - 1); // never older than maxDelay
      expect(t).toBeLessThanOrEqual(end);
    }
    // Every minute tick well inside the window was deferred, once.
    for (let t = Math.ceil((end - 600 + 1) / 60) * 60; t <= start; t += 60) expect(caughtUp).toContain(t);
    expect(new Set(caughtUp).size).toBe(caughtUp.length);
    const [skip] = actions(logger.records, "periodic_skip_missed");
    expect(skip?.level).toBe("warn");
    expect(skip?.fields).toMatchObject({ task: "minutely", periodicId: "", tick: lastRun + 60 });
  });

  it("skips a tick quietly while the queueing lock is taken by a todo job", async () => {
    const { app } = await setup();
    const task = app.task(
      { name: "report", queueingLock: "report" },
      async (_args: { timestamp: number }) => {},
    );
    app.periodic({ cron: EVERY_SECOND }, task);
    const waiting = await task.defer({ timestamp: 0 });
    const logger = recordingLogger();
    const service = startService(app, "scheduler", logger);
    cleanups.push(service.stop);
    await vi.waitFor(
      () => expect(actions(logger.records, "periodic_already_deferred").length).toBeGreaterThanOrEqual(2),
      {
        timeout: 8_000,
        interval: 100,
      },
    );
    await service.stop();

    expect((await app.jobManager.listJobs({ task: "report" })).map((j) => j.id)).toEqual([waiting]);
    expect(logger.records.filter((r) => r.level !== "debug")).toEqual([]);
    // The skipped ticks count as handled: they are not caught up later.
    expect(await app.jobManager.lastPeriodicTick("report", "")).toBeGreaterThan(0);
  });

  it("sleeps through ctx.sleep when its host drives time, deferring the ticks that host's clock reaches", async () => {
    // maxSleep bounds a timer's sleep only: the host wakes the service when its clock moves.
    const { app } = await setup({ maxSleep: 60_000, maxDelay: 3_600_000 });
    const task = app.task({ name: "hosted" }, async (_args: { timestamp: number }) => {});
    app.periodic({ cron: "*/10 * * * *" }, task);
    const service = app.workerServices.find((s) => s.name === "scheduler")!;
    const start = Date.parse("2030-01-01T00:00:00Z");
    vi.useFakeTimers({ toFake: ["Date"], now: start });
    cleanups.push(async () => {
      vi.useRealTimers();
    });
    // The host's sleep: each call waits until the test wakes it (or the stop aborts it).
    const controller = new AbortController();
    const sleeps: Array<{ ms: number; wake: () => void }> = [];
    let onSleep: (() => void) | undefined;
    const asleep = async () => {
      while (sleeps.length === 0) await new Promise<void>((resolve) => (onSleep = resolve));
      return sleeps.shift()!;
    };
    const done = service.run({
      app,
      signal: controller.signal,
      logger: recordingLogger(),
      workerId: 1,
      workerName: "host",
      queues: null,
      sleep: (ms) =>
        new Promise<void>((wake) => {
          controller.signal.addEventListener("abort", () => wake(), { once: true });
          sleeps.push({ ms, wake });
          onSleep?.();
        }),
    });
    const ticks = async () => timestamps(await app.jobManager.listJobs({ task: "hosted" }));

    // First pass at 00:00: the tick of this very second is due; it asks to sleep until 00:10.
    let sleep = await asleep();
    expect(await ticks()).toEqual([start / 1000]);
    expect(sleep.ms).toBe(600_000);

    // The host's clock moves 25 minutes, then wakes it: 00:10 and 00:20 are deferred, and
    // it asks to sleep until 00:30 (Date is frozen: only the host's wake-ups move it on).
    vi.setSystemTime(start + 25 * 60_000);
    sleep.wake();
    sleep = await asleep();
    expect(await ticks()).toEqual([0, 10, 20].map((m) => start / 1000 + m * 60));
    expect(sleep.ms).toBe(5 * 60_000);

    // Woken early (a host that knows of a new schedule): it looks, and sleeps on.
    sleep.wake();
    sleep = await asleep();
    expect(sleep.ms).toBe(5 * 60_000);
    expect(await ticks()).toHaveLength(3);

    controller.abort();
    await done;
  });

  it("runs several schedules of one task, and picks up a schedule added while running", async () => {
    const { app } = await setup({ maxSleep: 200 });
    const task = app.task({ name: "multi" }, async (_args: { timestamp: number; n: number }) => {});
    app.periodic({ cron: EVERY_SECOND, periodicId: "one", args: { n: 1 } }, task);
    const logger = recordingLogger();
    const service = startService(app, "scheduler", logger);
    cleanups.push(service.stop);
    app.periodic({ cron: EVERY_SECOND, periodicId: "two", args: { n: 2 } }, task);
    await vi.waitFor(
      async () => {
        const jobs = await app.jobManager.listJobs({ task: "multi" });
        expect(jobs.filter((j) => j.args.n === 1).length).toBeGreaterThanOrEqual(2);
        expect(jobs.filter((j) => j.args.n === 2).length).toBeGreaterThanOrEqual(2);
      },
      { timeout: 8_000, interval: 100 },
    );
    await service.stop();
    const jobs = await app.jobManager.listJobs({ task: "multi" });
    expectConsecutive(timestamps(jobs.filter((j) => j.args.n === 1)));
    expectConsecutive(timestamps(jobs.filter((j) => j.args.n === 2)));
  });
});
