import { AssertionError } from "node:assert";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type TestApp,
  createTestApp,
  deferredJobs,
  expectDeferred,
  expectNotDeferred,
  runUntilIdle,
} from "../src/index.js";
import { app, sendEmail, signUp } from "./fixtures/app.js";
import { cacheDir } from "./helpers.js";

const checkout = app.task(
  { name: "checkout" },
  async (_args: { cart: { items: Array<{ sku: string; qty: number }> }; coupon: string | null }) => {},
);

let t: TestApp<typeof app>;
beforeAll(async () => {
  t = await createTestApp(app, { cacheDir, now: new Date("2030-01-01T08:00:00Z") });
});
afterAll(() => t.close());
beforeEach(() => t.reset());

/** The message of the AssertionError `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AssertionError);
  expect((error as AssertionError).code).toBe("ERR_ASSERTION");
  return (error as AssertionError).message;
}

describe("expectDeferred", () => {
  it("finds jobs by partial args, nested, and resolves with them, oldest first", async () => {
    const first = await signUp.defer({ user: { id: 1, email: "ann@example.com", plan: "pro" } });
    const second = await signUp.defer({ user: { id: 2, email: "bob@example.com", plan: "pro" } });

    const jobs = await expectDeferred(signUp, { user: { plan: "pro" } });
    expect(jobs.map((j) => j.id)).toEqual([first, second]);
    expect(jobs[0]!.args.user.email).toBe("ann@example.com");
    await expectDeferred(signUp, { user: { id: 2 } }, { count: 1 });
    await expectDeferred(signUp, undefined, { count: 2 });
    await expectDeferred(signUp, { user: { email: expect.stringMatching(/@example\.com$/) } }, { count: 2 });
  });

  it("fails listing what was deferred, marking what matched", async () => {
    await sendEmail.defer({ to: "ann@example.com", template: "welcome" });
    await sendEmail
      .configure({ scheduleIn: { hours: 1 }, priority: 5 })
      .defer({ to: "bob@example.com", template: "tips" });

    const message = await failure(expectDeferred(sendEmail, { to: "carol@example.com" }));

    const [ann, bob] = (await deferredJobs(sendEmail)).map((j) => j.id);
    expect(message).toBe(
      `Expected a job of task "send_email" (todo) with args matching {"to":"carol@example.com"}, but none matched.
Jobs of task "send_email" that are todo (2):
  - job ${ann}: args {"to":"ann@example.com","template":"welcome"}, queue "emails"
  - job ${bob}: args {"to":"bob@example.com","template":"tips"}, queue "emails", priority 5, scheduled at 2030-01-01T09:00:00.000Z`,
    );
  });

  it("fails on a count, marking the jobs that matched", async () => {
    await sendEmail.defer({ to: "ann@example.com", template: "welcome" });
    await sendEmail.defer({ to: "bob@example.com", template: "welcome" });
    const message = await failure(
      expectDeferred(sendEmail, { template: "welcome" }, { count: 1, queue: "emails" }),
    );
    expect(message).toMatch(
      /^Expected 1 job of task "send_email" \(todo\) with args matching \{"template":"welcome"\}, queue "emails", but 2 matched \(marked ✓\)\.\nJobs of task "send_email" that are todo \(2\):\n {2}✓ job \d+: .*\n {2}✓ job \d+: /,
    );
  });

  it("when the task has no such job, says which tasks have some, or that none has", async () => {
    expect(await failure(expectDeferred(sendEmail))).toBe(
      'Expected a job of task "send_email" (todo), but none matched.\nNo job at all is todo.',
    );
    await signUp.defer({ user: { id: 1, email: "a@example.com", plan: "free" } });
    await signUp.defer({ user: { id: 2, email: "b@example.com", plan: "free" } });
    await checkout.defer({ cart: { items: [] }, coupon: null });
    expect(await failure(expectDeferred(sendEmail, { to: "a@example.com" }))).toBe(
      'Expected a job of task "send_email" (todo) with args matching {"to":"a@example.com"}, but none matched.\n' +
        'No job of task "send_email" is todo. Jobs that are: checkout ×1, sign_up ×2.',
    );
  });

  it("matches arrays element by element and exact values, and filters by queue, lock, schedule", async () => {
    await checkout.configure({ lock: "cart:9" }).defer({
      cart: {
        items: [
          { sku: "tea", qty: 2 },
          { sku: "mug", qty: 1 },
        ],
      },
      coupon: null,
    });
    await expectDeferred(checkout, { cart: { items: [{ sku: "tea" }, { sku: "mug" }] }, coupon: null });
    await expectNotDeferred(checkout, { cart: { items: [{ sku: "tea" }] } });
    await expectNotDeferred(checkout, { coupon: "SUMMER" });
    await expectDeferred(checkout, {}, { lock: "cart:9", queue: "default", scheduledAt: null, priority: 0 });
    await expectNotDeferred(checkout, {}, { lock: "cart:1" });
    await expectNotDeferred(checkout, {}, { scheduledAt: new Date() });
  });

  it("finds a job by schedule within a second", async () => {
    await sendEmail.configure({ scheduleIn: { minutes: 10 } }).defer({ to: "a@example.com", template: "x" });
    const at = new Date(t.clock.now() + 10 * 60_000);
    await expectDeferred(sendEmail, {}, { scheduledAt: new Date(at.getTime() + 999) });
    await expectNotDeferred(sendEmail, {}, { scheduledAt: new Date(at.getTime() + 1001) });
  });

  it("looks at other statuses when asked: what ran, what failed", async () => {
    await signUp.defer({ user: { id: 3, email: "c@example.com", plan: "free" } });
    await runUntilIdle(app);
    await expectNotDeferred(signUp);
    await expectDeferred(signUp, { user: { id: 3 } }, { status: "succeeded" });
    await expectDeferred(sendEmail, { template: "welcome" }, { status: ["succeeded", "failed"] });
    expect(await failure(expectDeferred(signUp, { user: { id: 4 } }, { status: "succeeded" }))).toMatch(
      /^Expected a job of task "sign_up" \(succeeded\) with args matching \{"user":\{"id":4\}\}, but none matched\.\nJobs of task "sign_up" that are succeeded \(1\):\n {2}- job \d+: args \{"user":\{.*"id":3.*\}\}, queue "default", succeeded$/,
    );
  });

  it("names a task by { app, name }: a task another process runs", async () => {
    await app.configureTask("billing:invoice", { allowUnknown: true }).defer({ customer: 42 });
    const [job] = await expectDeferred({ app, name: "billing:invoice" }, { customer: 42 });
    expect(job?.task).toBe("billing:invoice");
  });

  it("lists at most 20 jobs in a message", async () => {
    await sendEmail.batchDefer(
      Array.from({ length: 25 }, (_, i) => ({ to: `u${i}@example.com`, template: "news" })),
    );
    const message = await failure(expectDeferred(sendEmail, { template: "promo" }));
    expect(message.split("\n").filter((line) => line.startsWith("  - job"))).toHaveLength(20);
    expect(message.endsWith("\n  … and 5 more")).toBe(true);
  });
});

describe("expectNotDeferred", () => {
  it("passes when no job matches, fails listing the ones that do", async () => {
    await expectNotDeferred(sendEmail);
    const id = await sendEmail.defer({ to: "ann@example.com", template: "welcome" });
    await expectNotDeferred(sendEmail, { template: "tips" });
    expect(await failure(expectNotDeferred(sendEmail, { template: "welcome" }))).toBe(
      `Expected no job of task "send_email" (todo) with args matching {"template":"welcome"}, but 1 matched (marked ✓).
Jobs of task "send_email" that are todo (1):
  ✓ job ${id}: args {"to":"ann@example.com","template":"welcome"}, queue "emails"`,
    );
  });
});

describe("deferredJobs", () => {
  it("returns the matching jobs, oldest first, across pages", async () => {
    const ids = await sendEmail.batchDefer(
      Array.from({ length: 1005 }, (_, i) => ({ to: `u${i}@example.com`, template: i % 2 ? "odd" : "even" })),
    );
    const even = await deferredJobs(sendEmail, { template: "even" });
    expect(even.map((j) => j.id)).toEqual(ids.filter((_, i) => i % 2 === 0));
    expect(await deferredJobs(sendEmail)).toHaveLength(1005);
  });

  it("needs the app open, and a task", async () => {
    await expect(deferredJobs({ app: { isOpen: false } as never, name: "t" })).rejects.toThrow(
      'cannot look up the jobs of task "t": the app is not open',
    );
    await expect(deferredJobs(undefined as never)).rejects.toThrow(
      "deferredJobs: expected a task (or { app, name }), got undefined",
    );
  });
});
