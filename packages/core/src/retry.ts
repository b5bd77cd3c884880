import { InvalidOptions } from "./errors.js";
import type { Job } from "./job.js";
import {
  NAME_LIMITS,
  checkDate,
  checkName,
  checkPriority,
  describeValue,
  isPlainObject,
} from "./validate.js";

/**
 * What to do with a failed job: run it again at `at`, optionally elsewhere. Checked
 * like defer's options; a bad decision fails the job without retrying (see computeRetry).
 */
export interface RetryDecision {
  /** When to run again, a Date in the years 1 to 9999. Give `at` or `in`, not both; neither means now. */
  at?: Date;
  /** Run again this many ms from now (finite, >= 0; capped at ten years). */
  in?: number;
  /** Move the job to this queue. @defaultValue the job's queue */
  queue?: string;
  /** A 32-bit integer. @defaultValue the job's priority */
  priority?: number;
  /** @defaultValue the job's lock */
  lock?: string;
}

export type RetryErrorFilter =
  | Array<abstract new (...args: never[]) => unknown>
  | ((error: unknown) => boolean);

export interface RetryStrategy {
  /**
   * Total runs allowed, the first one included: `maxAttempts: 3` means one run and up
   * to two retries. `Infinity` retries forever. @defaultValue Infinity
   */
  maxAttempts?: number;
  /** Constant wait before each retry, in ms. @defaultValue 0 */
  wait?: number;
  /** Extra wait per attempt so far, in ms: `linearWait * attempts`. @defaultValue 0 */
  linearWait?: number;
  /** Base of an exponential wait in seconds: adds `exponentialWait ** attempts` s. @defaultValue 0 (none) */
  exponentialWait?: number;
  /** Upper bound of the computed wait, in ms. @defaultValue 86_400_000 (one day) */
  maxWait?: number;
  /**
   * Randomise each wait to spread retries of many jobs: `true` or a fraction in
   * (0, 1]; the wait is multiplied by a random factor in [1 - jitter, 1].
   * @defaultValue false
   */
  jitter?: boolean | number;
  /** Retry only on these error classes, or when the predicate says so. @defaultValue every error */
  retryOn?: RetryErrorFilter;
}

/**
 * A function deciding per failure, synchronously; `null` (or returning nothing) means
 * do not retry.
 */
export type RetryFunction = (error: unknown, job: Job) => RetryDecision | null;

/**
 * `true`: retry forever with exponential backoff (2 s, 4 s, 8 s, … capped at one day);
 * a number: `maxAttempts` (total runs, first included), retrying immediately;
 * an object: a {@link RetryStrategy}; a function: a {@link RetryFunction}.
 */
export type RetryOption = boolean | number | RetryStrategy | RetryFunction;

const DEFAULT_MAX_WAIT_MS = 86_400_000;
/** Largest delay we ever produce: far below what a JS Date can hold (8.64e15 ms). */
const ABSOLUTE_MAX_WAIT_MS = 10 * 365 * DEFAULT_MAX_WAIT_MS;

export function normalizeRetry(option: RetryOption | undefined): RetryStrategy | RetryFunction | null {
  if (option === undefined || option === false) return null;
  if (option === true) return { maxAttempts: Number.POSITIVE_INFINITY, exponentialWait: 2 };
  if (typeof option === "number") return { maxAttempts: option };
  return option;
}

/** Checks a retry option, returning problems (empty when valid). */
export function validateRetry(option: RetryOption | undefined): string[] {
  const problems: string[] = [];
  if (option === undefined || typeof option === "boolean" || typeof option === "function") return problems;
  if (typeof option === "number") {
    if (!(option >= 1) || (!Number.isInteger(option) && option !== Number.POSITIVE_INFINITY))
      problems.push(`retry: a number means maxAttempts and must be an integer >= 1 (got ${option})`);
    return problems;
  }
  if (typeof option !== "object" || option === null)
    return [`retry: expected boolean, number, object or function`];
  const nonNegative = (key: keyof RetryStrategy) => {
    const v = option[key];
    if (v !== undefined && (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)))
      problems.push(`retry.${key}: expected a finite number >= 0 (got ${String(v)})`);
  };
  if (option.maxAttempts !== undefined && !(option.maxAttempts >= 1))
    problems.push(`retry.maxAttempts: expected a number >= 1 (got ${String(option.maxAttempts)})`);
  nonNegative("wait");
  nonNegative("linearWait");
  nonNegative("exponentialWait");
  nonNegative("maxWait");
  if (
    option.jitter !== undefined &&
    typeof option.jitter !== "boolean" &&
    !(option.jitter > 0 && option.jitter <= 1)
  )
    problems.push(`retry.jitter: expected a boolean or a fraction in (0, 1] (got ${String(option.jitter)})`);
  if (option.retryOn !== undefined && !Array.isArray(option.retryOn) && typeof option.retryOn !== "function")
    problems.push("retry.retryOn: expected an array of error classes or a predicate function");
  return problems;
}

export function assertValidRetry(option: RetryOption | undefined, where: string): void {
  const problems = validateRetry(option);
  if (problems.length) throw new InvalidOptions(where, problems);
}

export interface RetryContext {
  error: unknown;
  job: Job;
  now?: Date;
  /** Source of randomness in [0, 1) for jitter; injectable for tests. */
  random?: () => number;
}

/**
 * The pure heart of retries: given the task's option and a failed run, when (and
 * where) to run again, or `null` to give up. `job.attempts` counts runs so far,
 * including the one that just failed. Never overflows: waits are computed in log
 * space and capped, so attempt 10,000 with exponential backoff still gives a date.
 * Throws InvalidOptions when a retry function returns a decision the database could
 * not store (see {@link RetryDecision}); an error the function throws propagates.
 */
export function computeRetry(
  option: RetryOption | undefined,
  ctx: RetryContext,
): { at: Date; queue?: string; priority?: number; lock?: string } | null {
  const strategy = normalizeRetry(option);
  if (!strategy) return null;
  const now = ctx.now ?? new Date();
  if (typeof strategy === "function") {
    const decision: unknown = strategy(ctx.error, ctx.job);
    if (decision === null || decision === undefined) return null;
    return checkedDecision(decision, ctx.job.task, now);
  }
  const maxAttempts = strategy.maxAttempts ?? Number.POSITIVE_INFINITY;
  if (ctx.job.attempts >= maxAttempts) return null;
  if (!matchesRetryOn(strategy.retryOn, ctx.error)) return null;
  return { at: new Date(now.getTime() + retryDelay(strategy, ctx.job.attempts, ctx.random ?? Math.random)) };
}

const DECISION_FIELDS = new Set(["at", "in", "queue", "priority", "lock"]);
const DECISION_SHAPE = "a decision { at?: Date, in?: ms, queue?, priority?, lock? }, or null not to retry";

/**
 * A retry function's decision, checked against defer's rules before it reaches the
 * worker's outcome writer: Postgres refuses a bad name or priority, an invalid Date
 * cannot even be sent, and an outcome the database refuses would be retried forever.
 * Throws InvalidOptions naming every bad field; the worker then fails the job.
 */
function checkedDecision(
  decision: unknown,
  task: string,
  now: Date,
): { at: Date; queue?: string; priority?: number; lock?: string } {
  const fail = (problems: string[]): never => {
    throw new InvalidOptions(`task ${JSON.stringify(task)} retry`, problems);
  };
  if (typeof decision !== "object" || decision === null) {
    const got =
      typeof decision === "number" || typeof decision === "boolean"
        ? String(decision)
        : `a ${typeof decision}`;
    return fail([`the retry function returned ${got}; return ${DECISION_SHAPE}`]);
  }
  if (typeof (decision as { then?: unknown }).then === "function") {
    // An async retry function: nobody awaits its promise, so a rejection would be unhandled.
    Promise.resolve(decision).catch(() => {});
    return fail([
      `the retry function returned a Promise; it must decide synchronously: return ${DECISION_SHAPE}`,
    ]);
  }
  if (!isPlainObject(decision))
    return fail([`the retry function returned ${describeValue(decision)}; return ${DECISION_SHAPE}`]);

  const d = decision as RetryDecision;
  const problems: string[] = [];
  const add = (problem: string | null, fix = "") => problem && problems.push(problem + fix);
  for (const key of Object.keys(d))
    if (!DECISION_FIELDS.has(key))
      problems.push(
        `decision has an unknown field ${JSON.stringify(key)}; use at, in, queue, priority or lock`,
      );
  const { at, in: inMs, queue, priority, lock } = d;
  if (at !== undefined && inMs !== undefined)
    problems.push("decision gives both at and in; give one: at (a Date) or in (ms from now)");
  if (at !== undefined) add(checkDate("decision.at", at));
  if (inMs !== undefined && !(typeof inMs === "number" && Number.isFinite(inMs) && inMs >= 0))
    problems.push(
      `decision.in must be a finite number of ms >= 0 (got ${typeof inMs === "number" ? inMs : describeValue(inMs)}); omit it to retry now`,
    );
  if (queue !== undefined)
    add(checkName("decision.queue", queue, NAME_LIMITS.queue), "; omit queue to keep the job's queue");
  const priorityProblem = priority === undefined ? null : checkPriority(priority);
  if (priorityProblem) problems.push(`decision.${priorityProblem}`);
  if (lock !== undefined)
    add(checkName("decision.lock", lock, NAME_LIMITS.lock), "; omit lock to keep the job's lock");
  if (problems.length) return fail(problems);
  return {
    at: at ?? new Date(now.getTime() + clampDelay(inMs ?? 0)),
    ...(queue !== undefined && { queue }),
    ...(priority !== undefined && { priority }),
    ...(lock !== undefined && { lock }),
  };
}

/** Delay in ms before the retry that follows run number `attempts`. */
export function retryDelay(
  strategy: RetryStrategy,
  attempts: number,
  random: () => number = Math.random,
): number {
  const maxWait = Math.min(strategy.maxWait ?? DEFAULT_MAX_WAIT_MS, ABSOLUTE_MAX_WAIT_MS);
  let delay = (strategy.wait ?? 0) + (strategy.linearWait ?? 0) * attempts;
  const base = strategy.exponentialWait ?? 0;
  if (base > 0) {
    // base ** attempts seconds, without ever computing an overflowing power.
    const log10Ms = attempts * Math.log10(base) + 3;
    delay += log10Ms > Math.log10(maxWait) ? maxWait : 10 ** log10Ms;
  }
  delay = Math.min(delay, maxWait);
  const jitter = strategy.jitter === true ? 1 : typeof strategy.jitter === "number" ? strategy.jitter : 0;
  if (jitter > 0) delay *= 1 - jitter * random();
  return clampDelay(delay);
}

function clampDelay(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) return ms > 0 ? ABSOLUTE_MAX_WAIT_MS : 0;
  return Math.min(Math.round(ms), ABSOLUTE_MAX_WAIT_MS);
}

function matchesRetryOn(filter: RetryErrorFilter | undefined, error: unknown): boolean {
  if (!filter) return true;
  if (typeof filter === "function") {
    // A single error class passed instead of an array is a function too.
    const cls = filter as unknown as typeof Error;
    if (cls === Error || cls.prototype instanceof Error) return error instanceof cls;
    return filter(error);
  }
  return filter.some((cls) => error instanceof (cls as abstract new (...args: never[]) => unknown));
}
