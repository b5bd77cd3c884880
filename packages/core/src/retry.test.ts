import { describe, expect, it } from "vitest";
import type { Job } from "./job.js";
import { computeRetry, retryDelay, validateRetry } from "./retry.js";

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
