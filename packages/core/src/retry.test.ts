import { describe, expect, it } from "vitest";
import { InvalidOptions } from "./errors.js";
import type { Job } from "./job.js";
import { type RetryDecision, computeRetry, retryDelay, validateRetry } from "./retry.js";

const now = new Date("2026-01-01T00:00:00Z");
const job = (attempts: number) => ({ attempts }) as Job;
const inMs = (r: { at: Date } | null) => (r ? r.at.getTime() - now.getTime() : null);

describe("computeRetry", () => {
  it("does not retry without a retry option", () => {
    expect(computeRetry(undefined, { error: new Error(), job: job(1), now })).toBeNull();
    expect(computeRetry(false, { error: new Error(), job: job(1), now })).toBeNull();
  });

  it("treats a number as maxAttempts: total runs, the first included", () => {
    expect(inMs(computeRetry(3, { error: new Error(), job: job(1), now }))).toBe(0);
    expect(inMs(computeRetry(3, { error: new Error(), job: job(2), now }))).toBe(0);
    expect(computeRetry(3, { error: new Error(), job: job(3), now })).toBeNull();
  });

  it("combines constant, linear and exponential waits", () => {
    const strategy = { wait: 1000, linearWait: 500, exponentialWait: 2 };
    // attempts=3: 1000 + 500*3 + 2**3 s
    expect(inMs(computeRetry(strategy, { error: new Error(), job: job(3), now }))).toBe(1000 + 1500 + 8000);
  });

  it("caps waits at maxWait", () => {
    expect(retryDelay({ exponentialWait: 2, maxWait: 60_000 }, 30)).toBe(60_000);
  });

  it("never overflows a date, even at attempt 10,000", () => {
    for (const strategy of [
      { exponentialWait: 10 },
      { exponentialWait: 2, maxWait: Number.MAX_VALUE },
      { linearWait: 1e300 },
    ]) {
      const r = computeRetry(strategy, { error: new Error(), job: job(10_000), now });
      expect(r).not.toBeNull();
      expect(Number.isFinite(r!.at.getTime())).toBe(true);
      expect(r!.at.getTime()).toBeGreaterThan(now.getTime());
    }
    const forever = computeRetry(true, { error: new Error(), job: job(10_000), now });
    expect(inMs(forever)).toBe(86_400_000);
  });

  it("applies jitter as a factor in [1 - jitter, 1]", () => {
    expect(retryDelay({ wait: 1000, jitter: 0.5 }, 1, () => 0)).toBe(1000);
    expect(retryDelay({ wait: 1000, jitter: 0.5 }, 1, () => 0.999999)).toBe(500);
    expect(retryDelay({ wait: 1000, jitter: true }, 1, () => 0.5)).toBe(500);
  });

  it("filters by error class or predicate", () => {
    class Transient extends Error {}
    const onTransient = { retryOn: [Transient] };
    expect(computeRetry(onTransient, { error: new Transient(), job: job(1), now })).not.toBeNull();
    expect(computeRetry(onTransient, { error: new Error(), job: job(1), now })).toBeNull();
    const single = { retryOn: Transient as unknown as (e: unknown) => boolean };
    expect(computeRetry(single, { error: new Error(), job: job(1), now })).toBeNull();
    expect(
      computeRetry({ retryOn: (e: unknown) => e === "x" }, { error: "x", job: job(1), now }),
    ).not.toBeNull();
  });

  it("follows a decision function", () => {
    const decide = (_e: unknown, j: Job) =>
      j.attempts < 2 ? { in: 5000, queue: "slow", priority: -1 } : null;
    expect(computeRetry(decide, { error: new Error(), job: job(1), now })).toEqual({
      at: new Date(now.getTime() + 5000),
      queue: "slow",
      priority: -1,
    });
    expect(computeRetry(decide, { error: new Error(), job: job(2), now })).toBeNull();
  });
});

describe("computeRetry with a decision function", () => {
  const failed = { attempts: 1, task: "send_email" } as Job;
  const decide = (decision: unknown) => () => decision as RetryDecision;
  const problemsOf = (decision: unknown): readonly string[] => {
    try {
      computeRetry(decide(decision), { error: new Error(), job: failed, now });
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptions);
      expect((error as Error).message).toMatch(/^invalid task "send_email" retry options:/);
      return (error as InvalidOptions).problems;
    }
    throw new Error("expected computeRetry to throw");
  };

  it("treats null, or no decision at all, as do not retry", () => {
    expect(computeRetry(decide(null), { error: new Error(), job: failed, now })).toBeNull();
    expect(computeRetry(decide(undefined), { error: new Error(), job: failed, now })).toBeNull();
  });

  it("retries now when the decision gives no time, and keeps at as given", () => {
    expect(computeRetry(decide({}), { error: new Error(), job: failed, now })).toEqual({ at: now });
    const at = new Date("2030-01-01T00:00:00Z");
    expect(computeRetry(decide({ at, lock: "l" }), { error: new Error(), job: failed, now })).toEqual({
      at,
      lock: "l",
    });
  });

  it("caps a huge but finite in at ten years, as backoffs are", () => {
    expect(inMs(computeRetry(decide({ in: 1e300 }), { error: new Error(), job: failed, now }))).toBe(
      10 * 365 * 86_400_000,
    );
  });

  it.each([
    ["a number", 5, "the retry function returned 5; return a decision"],
    ["true", true, "the retry function returned true; return a decision"],
    ["false", false, "the retry function returned false; return a decision"],
    ["a string", "later", "the retry function returned a string; return a decision"],
    ["an array", [], "the retry function returned an array; return a decision"],
    ["a Date", new Date(), "the retry function returned an instance of Date; return a decision"],
    [
      "a Promise",
      Promise.resolve({ in: 1 }),
      "the retry function returned a Promise; it must decide synchronously",
    ],
  ])("refuses %s as a decision", (_label, decision, problem) => {
    const problems = problemsOf(decision);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(problem);
  });

  it("handles the rejection of an async retry function, which nobody awaits", async () => {
    // An unhandled rejection would fail this test run.
    expect(problemsOf(Promise.reject(new Error("boom")))[0]).toContain("returned a Promise");
    await new Promise((resolve) => setImmediate(resolve));
  });

  it.each([
    ["an invalid Date", { at: new Date(Number.NaN) }, "decision.at is an invalid Date"],
    ["a date string", { at: "2030-01-01" }, "decision.at must be a Date (got string)"],
    ["a date past year 9999", { at: new Date("+010000-01-01T00:00:00Z") }, "decision.at is +010000-01-01"],
    ["the latest JS date", { at: new Date(8.64e15) }, "outside the years 1 to 9999"],
    ["a date before year 1", { at: new Date(-62135596800001) }, "outside the years 1 to 9999"],
    ["a negative in", { in: -1 }, "decision.in must be a finite number of ms >= 0 (got -1)"],
    ["NaN as in", { in: Number.NaN }, "decision.in must be a finite number of ms >= 0 (got NaN)"],
    ["Infinity as in", { in: Number.POSITIVE_INFINITY }, "(got Infinity)"],
    ["in as a string", { in: "5000" }, "decision.in must be a finite number of ms >= 0 (got string)"],
    ["both at and in", { at: now, in: 1000 }, "decision gives both at and in; give one"],
    ["an empty queue", { queue: "" }, "decision.queue must not be empty; omit queue to keep the job's queue"],
    ["a long queue", { queue: "q".repeat(129) }, "decision.queue is 129 characters long; the limit is 128"],
    ["a NUL in a queue", { queue: "a\u0000" }, "decision.queue must not contain a NUL character"],
    [
      "a lone surrogate in a lock",
      { lock: "\ud800" },
      "decision.lock must not contain a lone UTF-16 surrogate",
    ],
    [
      "a null lock",
      { lock: null },
      "decision.lock must be a string (got object); omit lock to keep the job's lock",
    ],
    [
      "a priority above 32 bits",
      { priority: 2 ** 40 },
      "decision.priority must be a 32-bit integer (got 1099511627776)",
    ],
    ["a fractional priority", { priority: 1.5 }, "decision.priority must be a 32-bit integer (got 1.5)"],
    [
      "an unknown field",
      { delay: 5000 },
      'decision has an unknown field "delay"; use at, in, queue, priority or lock',
    ],
  ])("refuses %s, naming the field", (_label, decision, problem) => {
    const problems = problemsOf(decision);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(problem);
  });

  it("accepts the edges of each rule", () => {
    const edges = {
      at: new Date("9999-12-31T23:59:59.999Z"),
      queue: "q".repeat(128),
      priority: -(2 ** 31),
      lock: "l".repeat(256),
    };
    expect(computeRetry(decide(edges), { error: new Error(), job: failed, now })).toEqual(edges);
    expect(
      computeRetry(decide({ at: new Date("0001-01-01T00:00:00Z") }), {
        error: new Error(),
        job: failed,
        now,
      }),
    ).not.toBeNull();
    expect(
      computeRetry(decide({ in: 0, priority: 2 ** 31 - 1 }), { error: new Error(), job: failed, now }),
    ).toEqual({
      at: now,
      priority: 2 ** 31 - 1,
    });
  });

  it("reports every bad field in one error", () => {
    expect(problemsOf({ queue: "", priority: 0.5, in: -1 })).toHaveLength(3);
  });

  it("lets an error thrown by the retry function itself propagate", () => {
    const boom = new Error("boom");
    const throwing = () => {
      throw boom;
    };
    expect(() => computeRetry(throwing, { error: new Error(), job: failed, now })).toThrow(boom);
  });
});

describe("validateRetry", () => {
  it("names each bad option", () => {
    expect(validateRetry({ maxAttempts: 0, wait: -1, jitter: 2 })).toEqual([
      "retry.maxAttempts: expected a number >= 1 (got 0)",
      "retry.wait: expected a finite number >= 0 (got -1)",
      "retry.jitter: expected a boolean or a fraction in (0, 1] (got 2)",
    ]);
    expect(validateRetry(0)).toHaveLength(1);
    expect(validateRetry({ maxAttempts: 5, exponentialWait: 2 })).toEqual([]);
  });
});
