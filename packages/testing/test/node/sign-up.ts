// A user's test file for node:test (no vitest in sight), run by test/node-test.test.ts with
// `node --test`: the package must work with any test runner.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type TestApp, createTestApp, expectDeferred, expectNotDeferred, runUntilIdle } from "@proc/testing";
import { app, dailyReport, outbox, reports, sendEmail, signUp } from "../fixtures/app.js";

let t: TestApp<typeof app>;
before(async () => {
  t = await createTestApp(app, {
    now: new Date("2030-01-01T08:00:00Z"),
    cacheDir: process.env.PROC_TESTING_CACHE_DIR,
  });
});
after(() => t.close());

test("sign-up sends the welcome email now and the tips tomorrow", async () => {
  await signUp.defer({ user: { id: 1, email: "ann@example.com", plan: "pro" } });
  await expectDeferred(signUp, { user: { id: 1 } });

  const result = await runUntilIdle(app);

  assert.deepEqual(
    result.runs.map((r) => [r.job.task, r.status]),
    [
      ["sign_up", "succeeded"],
      ["send_email", "succeeded"],
    ],
  );
  assert.deepEqual(outbox, [{ to: "ann@example.com", template: "welcome", at: "2030-01-01T08:00:00.000Z" }]);
  await expectDeferred(sendEmail, { template: "tips" }, { scheduledAt: new Date("2030-01-02T08:00:00Z") });
  await expectNotDeferred(sendEmail, { template: "welcome" });
});

test("a failed expectation is an AssertionError that lists what was deferred", async () => {
  await assert.rejects(expectDeferred(sendEmail, { to: "bob@example.com" }), (error: unknown) => {
    assert.ok(error instanceof assert.AssertionError);
    assert.match(
      error.message,
      /but none matched\.\nJobs of task "send_email" that are todo \(1\):\n {2}- job \d+: args \{"to":"ann@example\.com","template":"tips"\}/,
    );
    return true;
  });
});

test("a day later: the tips email and the daily report, each at its time", async () => {
  await runUntilIdle(app, { advance: { days: 1 } });
  assert.deepEqual(outbox.at(-1), {
    to: "ann@example.com",
    template: "tips",
    at: "2030-01-02T08:00:00.000Z",
  });
  assert.deepEqual(reports, [{ tick: "2030-01-01T09:00:00.000Z", ranAt: "2030-01-01T09:00:00.000Z" }]);
  await expectNotDeferred(dailyReport);
});
