import { App, type Connector, InvalidOptions, silentLogger } from "@proc/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  RunUntilIdleError,
  type TestApp,
  createTestApp,
  expectDeferred,
  expectNotDeferred,
  runUntilIdle,
} from "../src/index.js";
import { app, outbox, sendEmail, signUp } from "./fixtures/app.js";
import { cacheDir } from "./helpers.js";

// Tasks that misbehave on purpose, registered on the app as a test file of the app would.
const explode = app.task({ name: "explode" }, async () => {
  throw new TypeError("cannot read properties of undefined (reading 'id')");
});
const poll = app.task({ name: "poll" }, async (args: { n: number }) => {
  await poll.defer({ n: args.n + 1 });
});
const hang = app.task({ name: "hang" }, () => new Promise<never>(() => {}));

let t: TestApp<typeof app>;
/** `n` minutes after the clock's time now. */
const inMinutes = (n: number) => new Date(t.clock.now() + n * 60_000);

beforeAll(async () => {
  // A frozen clock: nothing falls due unless a test moves it.
  t = await createTestApp(app, { cacheDir, now: new Date("2030-01-01T08:00:00Z") });
});
afterAll(() => t.close());
beforeEach(() => {
  outbox.length = 0;
});

/** No worker left behind: none registered, no job doing. */
async function expectNoWorker(): Promise<void> {
  expect(await app.jobManager.listWorkers()).toEqual([]);
  expect(await app.jobManager.listJobs({ status: "doing" })).toEqual([]);
}

describe("runUntilIdle", () => {
  beforeEach(() => t.reset());

  it("runs the jobs and the jobs they defer until none is ready, and says what ran", async () => {
    await signUp.defer({ user: { id: 7, email: "ann@example.com", plan: "pro" } });

    const result = await runUntilIdle(app);

    expect(result.runs.map((r) => [r.job.task, r.job.args, r.status, r.result])).toEqual([
      ["sign_up", { user: { id: 7, email: "ann@example.com", plan: "pro" } }, "succeeded", { userId: 7 }],
      ["send_email", { to: "ann@example.com", template: "welcome" }, "succeeded", { delivered: true }],
    ]);
    expect(result).toMatchObject({ succeeded: 2, failed: 0, retried: 0, aborted: 0 });
    expect(outbox).toEqual([{ to: "ann@example.com", template: "welcome", at: new Date().toISOString() }]);
    // The tips email is scheduled for tomorrow: deferred, not run.
    await expectDeferred(sendEmail, { template: "tips" }, { scheduledAt: inMinutes(24 * 60), count: 1 });
    await expectNotDeferred(sendEmail, { template: "welcome" });
    await expectNoWorker();
  });

  it("runs a job scheduled in 5 minutes once the clock has passed it", async () => {
    const due = inMinutes(5);
    await sendEmail
      .configure({ scheduleIn: { minutes: 5 } })
      .defer({ to: "bob@example.com", template: "reminder" });
    expect((await runUntilIdle(app)).runs).toEqual([]);

    await t.clock.advance({ minutes: 5 });
    const result = await runUntilIdle(app);

    expect(result.runs.map((r) => r.status)).toEqual(["succeeded"]);
    expect(outbox).toEqual([{ to: "bob@example.com", template: "reminder", at: due.toISOString() }]);
  });

  it("with advance, runs each job when it falls due: retries at their retry time", async () => {
    const from = t.clock.now();
    await sendEmail.defer({ to: "flaky@example.com", template: "welcome" });

    const result = await runUntilIdle(app, { advance: { minutes: 5 }, logger: silentLogger });

    // wait: 60_000 between attempts, maxAttempts: 3.
    expect(result.runs.map((r) => [r.status, r.retryAt?.getTime() ?? null])).toEqual([
      ["todo", from + 60_000],
      ["todo", from + 120_000],
      ["succeeded", null],
    ]);
    expect(result.runs[0]!.error).toBeInstanceOf(Error);
    expect((result.runs[0]!.error as Error).message).toBe("SMTP 451 for flaky@example.com");
    expect(result).toMatchObject({ succeeded: 1, retried: 2, failed: 0 });
    expect(outbox.map((m) => m.at)).toEqual([new Date(from + 120_000).toISOString()]);
    expect(t.clock.now()).toBe(from + 5 * 60_000);
  });

  it("without advance, a retry waits for the clock", async () => {
    await sendEmail.defer({ to: "flaky@example.com", template: "welcome" });
    expect((await runUntilIdle(app, { logger: silentLogger })).retried).toBe(1);
    expect((await runUntilIdle(app, { logger: silentLogger })).runs).toEqual([]);
    await t.clock.advance({ minutes: 1 });
    expect((await runUntilIdle(app, { logger: silentLogger })).retried).toBe(1);
  });

  it("reports a failed job in the result; with throwOnError, throws its error as cause", async () => {
    await explode.defer({});
    const result = await runUntilIdle(app, { logger: silentLogger });
    expect(result).toMatchObject({ succeeded: 0, failed: 1 });
    expect(result.runs[0]).toMatchObject({ status: "failed", error: expect.any(TypeError) });

    const id = await explode.defer({});
    const error = await runUntilIdle(app, { throwOnError: true, logger: silentLogger }).catch((e) => e);
    expect(error).toBeInstanceOf(RunUntilIdleError);
    expect(error.reason).toBe("jobError");
    expect(error.message).toBe(
      `job ${id} (explode {}) ended failed: TypeError: cannot read properties of undefined (reading 'id')`,
    );
    expect(error.cause).toBeInstanceOf(TypeError);
    expect(error.result.failed).toBe(1);
    await expectNoWorker();
  });

  it("only runs the queues it is given", async () => {
    await sendEmail.defer({ to: "a@example.com", template: "welcome" });
    await signUp.defer({ user: { id: 1, email: "b@example.com", plan: "free" } });
    const result = await runUntilIdle(app, { queues: ["emails"] });
    expect(result.runs.map((r) => r.job.task)).toEqual(["send_email"]);
    await expectDeferred(signUp, { user: { id: 1 } });
  });

  it("stops a job that keeps deferring itself after maxJobs runs, naming it and the chain", async () => {
    await poll.defer({ n: 1 });

    const error = await runUntilIdle(app, { maxJobs: 25 }).catch((e) => e);

    expect(error).toBeInstanceOf(RunUntilIdleError);
    expect(error.reason).toBe("maxJobs");
    expect(error.message).toMatch(
      /^runUntilIdle stopped its worker: more than 25 job runs \(maxJobs\): task "poll" keeps deferring itself: job \d+ \(poll \{"n":26\}\) ← deferred by job \d+ \(poll \{"n":25\}\) ← deferred by job \d+ \(poll \{"n":24\}\) ← deferred by job \d+ \(poll \{"n":23\}\) ← …\. Runs by task: poll ×26\. /,
    );
    expect(error.result.runs).toHaveLength(26);
    await expectNoWorker();
    await expectDeferred(poll, { n: 27 }, { count: 1 });
  });

  it("with many independent jobs past maxJobs, says so without blaming a task", async () => {
    await sendEmail.batchDefer(
      Array.from({ length: 5 }, (_, i) => ({ to: `user${i}@example.com`, template: "news" })),
    );
    const error = await runUntilIdle(app, { maxJobs: 3 }).catch((e) => e);
    expect(error.message).toBe(
      "runUntilIdle stopped its worker: more than 3 job runs (maxJobs). Runs by task: send_email ×4. " +
        "Raise maxJobs if the test really needs that many.",
    );
    await expectNoWorker();
  });

  it("stops a job that never settles after timeout, aborting it, and names it", async () => {
    const id = await hang.defer({});

    const error = await runUntilIdle(app, { timeout: 200, logger: silentLogger }).catch((e) => e);

    expect(error).toBeInstanceOf(RunUntilIdleError);
    expect(error.reason).toBe("timeout");
    expect(error.message).toBe(
      `runUntilIdle stopped its worker: nothing finished for 200 ms (timeout) while running job ${id} (hang {}); ` +
        "it was aborted. Does the task await something that never settles? Raise timeout if it is only slow.",
    );
    expect((await app.jobManager.getJob(id))?.status).toBe("aborted");
    await expectNoWorker();
  });
});

describe("runUntilIdle refuses", () => {
  it("an app that is not open, and options it cannot use, naming each", async () => {
    const closed = new App({ connector: { query: async () => [] } as unknown as Connector });
    await expect(runUntilIdle(closed)).rejects.toThrow(
      "cannot run jobs until idle (createTestApp(app) opens it on a test database): the app is not open; call await app.open() first",
    );
    await expect(runUntilIdle(app, { maxJobs: 0, timeout: -1, advance: -5 })).rejects.toThrow(InvalidOptions);
    await expect(runUntilIdle(app, { maxJobs: 0, timeout: -1, advance: -5 })).rejects.toThrow(
      /advance: expected a duration >= 0[\s\S]*maxJobs: expected a positive integer \(got 0\)[\s\S]*timeout: expected ms between 1 and 2147483647 \(got -1\)/,
    );
  });

  it("advance on an app that is not a test app: there is no clock to move", async () => {
    const connector = {
      kind: "fake",
      open: async () => {},
      close: async () => {},
      query: async () => [],
    } as unknown as Connector;
    const plain = new App({ connector });
    await plain.open();
    await expect(runUntilIdle(plain, { advance: 1000 })).rejects.toThrow(
      /advance: needs an app from createTestApp\(\), whose clock it moves/,
    );
    await plain.close();
  });
});
