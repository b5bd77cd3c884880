import type { App } from "./app.js";
import type { DriverConnection } from "./connector.js";
import { InvalidArgs, InvalidOptions } from "./errors.js";
import type { Job } from "./job.js";
import type { NewJob, NewJobFlow } from "./job-manager.js";
import type { JsonObject } from "./json.js";
import type { Logger } from "./logger.js";
import { type RetryOption, validateRetry } from "./retry.js";
import { type StandardSchemaV1, runSchema } from "./standard-schema.js";
import {
  NAME_LIMITS,
  assertJsonArgs,
  checkDate,
  checkDuration,
  checkName,
  checkPriority,
} from "./validate.js";

/**
 * Extra context handed to every task. Augment it to type what your worker's
 * `additionalContext` provides:
 * ```ts
 * declare module "@proc/core" { interface AdditionalContext { db: Db } }
 * ```
 */
// biome-ignore lint/suspicious/noEmptyInterface: meant to be augmented by users.
export interface AdditionalContext {}

/** What a task's handler receives besides its args. */
export interface JobContext<Args = JsonObject> extends AdditionalContext {
  job: Job<Args>;
  /** Fires on abort request, timeout or worker shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  /** Scoped to this job (jobId, task, attempt). */
  logger: Logger;
  app: App;
  workerId: number;
  workerName: string;
}

export type TaskHandler<Args, Result> = (args: Args, ctx: JobContext<Args>) => Promise<Result> | Result;

/**
 * Wraps a task run: call `next()` to run the task (or the next middleware) and return
 * (or transform) its result. Given to a task (`middleware` option) or to a worker (every
 * task it runs); the worker's wrap the task's.
 */
export type TaskMiddleware = (ctx: JobContext<unknown>, next: () => Promise<unknown>) => Promise<unknown>;

/** `{ seconds: 30 }`, or a number of milliseconds. */
export type Duration =
  | number
  | { milliseconds?: number; seconds?: number; minutes?: number; hours?: number; days?: number };

export function durationMs(d: Duration): number {
  if (typeof d === "number") return d;
  return (
    (d.milliseconds ?? 0) +
    (d.seconds ?? 0) * 1e3 +
    (d.minutes ?? 0) * 6e4 +
    (d.hours ?? 0) * 3.6e6 +
    (d.days ?? 0) * 8.64e7
  );
}

export type OnConflict = "error" | "ignore" | "replace";
const ON_CONFLICT: readonly OnConflict[] = ["error", "ignore", "replace"];

/** Where and how a job is deferred. Set per task, overridden by `configure()`. */
export interface JobOptions {
  /** @defaultValue "default" */
  queue?: string;
  /** Higher runs first. @defaultValue 0 */
  priority?: number;
  /** At most one job with this lock runs at a time, in priority then id order. */
  lock?: string | null;
  /** At most one todo job with this queueing lock; what a second defer does is `onConflict`. */
  queueingLock?: string | null;
  /**
   * When a todo job already holds the queueing lock: "error" throws AlreadyEnqueued (and a
   * batch inserts nothing); "ignore" defers nothing and returns the waiting job's id;
   * "replace" gives the waiting job the new args, schedule and headers and returns its id
   * (with `scheduleIn`, a debounce: one run, after the last defer, with the latest args).
   * @defaultValue "error"
   */
  onConflict?: OnConflict;
  /** Run no earlier than this date. */
  scheduleAt?: Date;
  /** Run no earlier than this long from now. */
  scheduleIn?: Duration;
  /**
   * At most `concurrencyLimit` jobs with this key run at once, across every worker (the
   * database's claim enforces it). Jobs held back stay todo and start as soon as a run of
   * their key ends; other keys' jobs are not held up meanwhile. Needs `concurrencyLimit`.
   * On a task it may be a function of the args (`(args) => \`customer:${args.id}\``).
   */
  concurrencyKey?: string | null;
  /**
   * How many jobs of `concurrencyKey` may run at once (a whole number from 1). Given
   * without a key, the task itself is the key ("task:<name>"): at most this many of its
   * jobs run at once. `lock` is the ordered case of a limit of 1.
   */
  concurrencyLimit?: number | null;
  /**
   * At most `max` jobs start in any window of `per` (ms or a Duration), across every
   * worker: a sliding window, exact in every window. Jobs of the same `key` share it
   * (default: the task, "task:<name>"). Held-back jobs stay todo, never count as
   * attempts, and start as soon as the window allows. A start is the database's claim
   * time (`job.startedAt`).
   */
  rateLimit?: RateLimitOption | null;
  /** Not started within this long from the defer, the job ends cancelled (reason "expired") unrun. */
  expireIn?: Duration;
  /** Not started by this date, the job ends cancelled (reason "expired") unrun. */
  expireAt?: Date;
  /**
   * Throttle, with a `queueingLock`: no new job of that queueing lock until this long
   * after the last one started. A defer inside the window is treated as a queueing-lock
   * conflict (`onConflict`: "error" throws AlreadyEnqueued, "ignore" and "replace"
   * return the recent job's id). It reads the jobs' history: deleting finished jobs
   * sooner than the window (deleteJobs, retention) shortens it.
   */
  uniqueFor?: Duration;
}

export interface RateLimitOption {
  /** Starts allowed per window, 1 to 1,000,000. */
  max: number;
  /** The window: ms, or a Duration (`{ seconds: 1 }`). */
  per: Duration;
  /** Jobs sharing a key share the limit. @defaultValue "task:<task name>" */
  key?: string;
}

export interface DeferCallOptions {
  /** Defer on the caller's connection, inside their transaction (pg PoolClient, PGlite Transaction). */
  connection?: DriverConnection;
}

export interface TaskOptions<Args>
  extends Omit<JobOptions, "scheduleAt" | "scheduleIn" | "expireAt" | "concurrencyKey"> {
  name: string;
  /** JobOptions.concurrencyKey, or a function of the args that gives it. */
  concurrencyKey?: string | null | ((args: Args) => string);
  /** Retries after a failure (see RetryOption). @defaultValue no retry */
  retry?: RetryOption;
  /**
   * Abort the job's signal after this many ms; the run then fails (retry applies).
   * At most 2147483647 (about 24.8 days), the longest timer Node.js can set.
   */
  timeout?: number;
  /** A Standard Schema (zod, valibot, …) checked at defer time and at run time. */
  schema?: StandardSchemaV1<Args, unknown>;
  /** Wrap every run of this task, outermost first (inside the worker's middleware). */
  middleware?: readonly TaskMiddleware[];
}

/** The part of an App a deferrer needs. */
export interface DeferTarget {
  deferJobs(jobs: NewJob[], call?: DeferCallOptions): Promise<number[]>;
}

/**
 * Defers jobs of one task with fixed options. `task.configure(...)` returns one;
 * configure calls chain, later options winning.
 */
export class Deferrer<Args> {
  readonly taskName: string;
  readonly options: Readonly<JobOptions>;
  readonly #target: () => DeferTarget;
  readonly #schema: StandardSchemaV1<Args, unknown> | undefined;
  /** The task's concurrencyKey function, until a configure() names a key. */
  readonly #keyOf: ((args: Args) => string) | undefined;

  constructor(
    target: () => DeferTarget,
    taskName: string,
    options: JobOptions,
    schema?: StandardSchemaV1<Args, unknown>,
    keyOf?: (args: Args) => string,
  ) {
    this.#target = target;
    this.taskName = taskName;
    this.options = options;
    this.#schema = schema;
    this.#keyOf = keyOf;
    // A task registered on an app had its name checked; one deferred by name
    // (configureTask with allowUnknown) reaches here unchecked.
    const nameProblem = checkName("task name", taskName, NAME_LIMITS.task);
    if (nameProblem) throw new InvalidArgs(`${nameProblem}; nothing was deferred`, [nameProblem]);
    assertJobOptions(options);
  }

  configure(options: JobOptions): Deferrer<Args> {
    return new Deferrer(
      this.#target,
      this.taskName,
      mergeJobOptions(this.options, options),
      this.#schema,
      options.concurrencyKey === undefined ? this.#keyOf : undefined,
    );
  }

  /** Defer one job; resolves with its id. */
  async defer(args: Args, call?: DeferCallOptions): Promise<number> {
    const [id] = await this.batchDefer([args], call);
    return id!;
  }

  /** Defer many jobs atomically in one statement: all are inserted or none. */
  async batchDefer(argsList: readonly Args[], call?: DeferCallOptions): Promise<number[]> {
    const jobs: NewJob[] = [];
    const scheduledAt = scheduledAtOf(this.options);
    const onConflict = this.options.onConflict ?? "error";
    if (onConflict !== "error" && !this.options.queueingLock)
      throw new InvalidArgs(
        `onConflict ${JSON.stringify(onConflict)} needs a queueingLock (it names the waiting job a defer joins); nothing was deferred`,
        ["onConflict needs a queueingLock"],
      );
    if (this.options.uniqueFor !== undefined && !this.options.queueingLock)
      throw new InvalidArgs(
        "uniqueFor needs a queueingLock (it names the jobs whose last start opens the window); nothing was deferred",
        ["uniqueFor needs a queueingLock"],
      );
    const flow = flowOf(this.options, this.taskName);
    for (const [i, args] of argsList.entries()) {
      assertJsonArgs(args, argsList.length > 1 ? i : "args");
      if (this.#schema) {
        const checked = await runSchema(this.#schema, args);
        if (!checked.ok)
          throw new InvalidArgs(
            `args of task ${JSON.stringify(this.taskName)} do not match its schema: ${checked.issues.join("; ")}`,
            checked.issues,
          );
      }
      jobs.push({
        task: this.taskName,
        queue: this.options.queue ?? "default",
        priority: this.options.priority ?? 0,
        lock: this.options.lock ?? null,
        queueingLock: this.options.queueingLock ?? null,
        args: args as JsonObject,
        scheduledAt,
        onConflict,
        flow: this.#keyOf ? { ...flow!, concurrencyKey: this.#keyFor(args) } : flow,
      });
    }
    return this.#target().deferJobs(jobs, call);
  }

  #keyFor(args: Args): string {
    let key: unknown;
    try {
      key = this.#keyOf!(args);
    } catch (error) {
      throw new InvalidArgs(
        `the concurrencyKey function of task ${JSON.stringify(this.taskName)} threw: ${(error as Error)?.message}; nothing was deferred`,
        ["concurrencyKey function threw"],
        { cause: error },
      );
    }
    const problem = checkName("concurrencyKey", key, NAME_LIMITS.lock);
    if (problem)
      throw new InvalidArgs(
        `the concurrencyKey function of task ${JSON.stringify(this.taskName)} gave a bad key: ${problem}; nothing was deferred`,
        [problem],
      );
    return key as string;
  }
}

/** A registered task: its handler and options, and a typed deferrer. */
export class Task<Args = JsonObject, Result = unknown> {
  readonly options: Readonly<TaskOptions<Args>>;
  readonly handler: TaskHandler<Args, Result>;
  #name: string;
  #app: App | null = null;

  constructor(options: TaskOptions<Args>, handler: TaskHandler<Args, Result>) {
    assertTaskOptions(options);
    if (typeof handler !== "function")
      throw new InvalidOptions(`task ${JSON.stringify(options.name)}`, ["handler: expected a function"]);
    this.#name = options.name;
    this.options = options;
    this.handler = handler;
  }

  /** The registered name (a blueprint namespace prefixes it: "ns:name"). */
  get name(): string {
    return this.#name;
  }

  /** @internal Called by App when the task (or its blueprint) is registered. */
  bind(app: App, name: string): void {
    if (this.#app && this.#app !== app)
      throw new InvalidOptions(`task ${JSON.stringify(this.#name)}`, [
        "it is already registered on another app",
      ]);
    const problem = checkName("name", name, NAME_LIMITS.task);
    if (problem) throw new InvalidOptions(`task ${JSON.stringify(name)}`, [problem]);
    this.#app = app;
    this.#name = name;
  }

  get app(): App {
    if (!this.#app)
      throw new InvalidOptions(`task ${JSON.stringify(this.name)}`, [
        "it belongs to a blueprint that is not added to an app yet; call app.addBlueprint(blueprint) first",
      ]);
    return this.#app;
  }

  #deferrer(): Deferrer<Args> {
    const { queue, priority, lock, queueingLock, onConflict, concurrencyKey, concurrencyLimit } =
      this.options;
    const { rateLimit, expireIn, uniqueFor } = this.options;
    return new Deferrer<Args>(
      () => this.app,
      this.name,
      {
        queue,
        priority,
        lock,
        queueingLock,
        onConflict,
        concurrencyKey: typeof concurrencyKey === "function" ? undefined : concurrencyKey,
        concurrencyLimit,
        rateLimit,
        expireIn,
        uniqueFor,
      },
      this.options.schema,
      typeof concurrencyKey === "function" ? concurrencyKey : undefined,
    );
  }

  configure(options: JobOptions): Deferrer<Args> {
    return this.#deferrer().configure(options);
  }

  defer(args: Args, call?: DeferCallOptions): Promise<number> {
    return this.#deferrer().defer(args, call);
  }

  batchDefer(argsList: readonly Args[], call?: DeferCallOptions): Promise<number[]> {
    return this.#deferrer().batchDefer(argsList, call);
  }

  /** Validate args for a run (the worker calls this); returns the schema's output. */
  async parseArgs(args: unknown): Promise<{ ok: true; value: Args } | { ok: false; issues: string[] }> {
    if (!this.options.schema) return { ok: true, value: args as Args };
    const checked = await runSchema(this.options.schema, args);
    return checked.ok ? { ok: true, value: checked.value as Args } : checked;
  }
}

function mergeJobOptions(base: JobOptions, over: JobOptions): JobOptions {
  const merged: JobOptions = { ...base };
  for (const [key, value] of Object.entries(over))
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  // scheduleAt and scheduleIn are alternatives: the one given last wins; so are
  // expireAt and expireIn.
  if (over.scheduleAt !== undefined) delete merged.scheduleIn;
  if (over.scheduleIn !== undefined) delete merged.scheduleAt;
  if (over.expireAt !== undefined) delete merged.expireIn;
  if (over.expireIn !== undefined) delete merged.expireAt;
  return merged;
}

/**
 * The flow-control part of a new job (see NewJobFlow), or undefined when it has none:
 * the task's name keys a limit given without a key.
 */
function flowOf(options: JobOptions, taskName: string): NewJobFlow | undefined {
  const { concurrencyLimit, rateLimit, expireAt, expireIn, uniqueFor } = options;
  const limited = concurrencyLimit != null;
  if (
    !limited &&
    rateLimit == null &&
    expireAt === undefined &&
    expireIn === undefined &&
    uniqueFor === undefined
  )
    return undefined;
  return {
    concurrencyKey: limited ? (options.concurrencyKey ?? `task:${taskName}`) : null,
    concurrencyLimit: limited ? concurrencyLimit : null,
    rateLimit: rateLimit
      ? { key: rateLimit.key ?? `task:${taskName}`, max: rateLimit.max, per: durationMs(rateLimit.per) }
      : null,
    expireAt: expireAt ?? (expireIn !== undefined ? new Date(Date.now() + durationMs(expireIn)) : null),
    uniqueForMs: uniqueFor !== undefined ? durationMs(uniqueFor) : null,
  };
}

function scheduledAtOf(options: JobOptions): Date | null {
  if (options.scheduleAt) return options.scheduleAt;
  if (options.scheduleIn !== undefined) return new Date(Date.now() + durationMs(options.scheduleIn));
  return null;
}

/** Job options as a task may give them (its concurrencyKey may be a function of the args). */
type AnyJobOptions = Omit<JobOptions, "concurrencyKey"> & {
  concurrencyKey?: string | null | ((args: never) => string);
};

export function jobOptionProblems(options: AnyJobOptions): string[] {
  const problems: string[] = [];
  const add = (p: string | null) => p && problems.push(p);
  if (options.queue !== undefined) add(checkName("queue", options.queue, NAME_LIMITS.queue));
  if (options.lock != null) add(checkName("lock", options.lock, NAME_LIMITS.lock));
  if (options.queueingLock != null)
    add(checkName("queueingLock", options.queueingLock, NAME_LIMITS.queueingLock));
  if (options.priority !== undefined) add(checkPriority(options.priority));
  if (options.onConflict !== undefined && !ON_CONFLICT.includes(options.onConflict))
    problems.push(
      `onConflict must be "error", "ignore" or "replace", got ${JSON.stringify(options.onConflict)}`,
    );
  if (options.scheduleAt !== undefined) add(checkDate("scheduleAt", options.scheduleAt));
  problems.push(...flowProblems(options));
  if (options.scheduleIn !== undefined) {
    const ms =
      typeof options.scheduleIn === "object" || typeof options.scheduleIn === "number"
        ? durationMs(options.scheduleIn)
        : Number.NaN;
    if (!Number.isFinite(ms) || ms < 0 || ms > 3.15e12)
      problems.push("scheduleIn must be a duration ({ seconds: 30 } or ms) between 0 and 100 years");
  }
  return problems;
}

/** A Duration option that is not a timer: positive, at most `maxMs`. */
function checkSpan(name: string, value: unknown, maxMs: number, maxText: string): string | null {
  const ms =
    typeof value === "number" || (typeof value === "object" && value !== null && !(value instanceof Date))
      ? durationMs(value as Duration)
      : Number.NaN;
  return Number.isFinite(ms) && ms > 0 && ms <= maxMs
    ? null
    : `${name} must be a duration ({ seconds: 30 } or ms) above 0 and at most ${maxText} (got ${JSON.stringify(value)})`;
}

function flowProblems(options: AnyJobOptions): string[] {
  const problems: string[] = [];
  const add = (p: string | null) => p && problems.push(p);
  const { concurrencyKey, concurrencyLimit, rateLimit } = options;
  // On a task, a function gives the key per job (checked at defer).
  if (concurrencyKey != null) {
    if (typeof concurrencyKey !== "function")
      add(checkName("concurrencyKey", concurrencyKey, NAME_LIMITS.lock));
    if (concurrencyLimit == null)
      problems.push("concurrencyKey needs concurrencyLimit: how many jobs of the key may run at once");
  }
  if (
    concurrencyLimit != null &&
    !(Number.isSafeInteger(concurrencyLimit) && concurrencyLimit >= 1 && concurrencyLimit <= 2147483647)
  )
    problems.push(`concurrencyLimit must be a whole number from 1, got ${JSON.stringify(concurrencyLimit)}`);
  if (rateLimit != null) {
    if (typeof rateLimit !== "object") problems.push("rateLimit must be { max, per, key? }");
    else {
      if (!(Number.isSafeInteger(rateLimit.max) && rateLimit.max >= 1 && rateLimit.max <= 1_000_000))
        problems.push(
          `rateLimit.max must be a whole number from 1 to 1000000, got ${JSON.stringify(rateLimit.max)}`,
        );
      add(checkSpan("rateLimit.per", rateLimit.per, 2147483647, "2147483647 ms (about 24.8 days)"));
      if (rateLimit.key !== undefined) add(checkName("rateLimit.key", rateLimit.key, NAME_LIMITS.lock));
    }
  }
  if (options.expireIn !== undefined) add(checkSpan("expireIn", options.expireIn, 3.15e12, "100 years"));
  if (options.expireAt !== undefined) add(checkDate("expireAt", options.expireAt));
  if (options.uniqueFor !== undefined) add(checkSpan("uniqueFor", options.uniqueFor, 3.15e12, "100 years"));
  return problems;
}

function assertJobOptions(options: JobOptions): void {
  const problems = jobOptionProblems(options);
  if (problems.length)
    throw new InvalidArgs(`invalid job options: ${problems.join("; ")}; nothing was deferred`, problems);
}

function assertTaskOptions<Args>(options: TaskOptions<Args>): void {
  const problems: string[] = [];
  if (typeof options !== "object" || options === null)
    throw new InvalidOptions("task", ["expected an options object with a name"]);
  const nameProblem = checkName("name", options.name, NAME_LIMITS.task);
  if (nameProblem) problems.push(nameProblem);
  problems.push(...jobOptionProblems(options), ...validateRetry(options.retry));
  if (options.timeout !== undefined) {
    const problem = checkDuration("timeout", options.timeout);
    if (problem) problems.push(problem);
  }
  if (
    options.middleware !== undefined &&
    (!Array.isArray(options.middleware) || options.middleware.some((m) => typeof m !== "function"))
  )
    problems.push("middleware must be an array of functions (ctx, next) => Promise");
  if (options.schema !== undefined && typeof options.schema?.["~standard"]?.validate !== "function")
    problems.push("schema must be a Standard Schema (zod, valibot, arktype …)");
  if (problems.length) throw new InvalidOptions(`task ${JSON.stringify(options.name)}`, problems);
}
