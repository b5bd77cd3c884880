import { type RetentionOptions, retentionRules, runRetention } from "./retention.js";
import { sleep } from "./sleep.js";
import {
  type App,
  type InvalidArgs,
  InvalidOptions,
  type JobOptions,
  type JsonObject,
  type NewJob,
  type Plugin,
  type Task,
  type WorkerServiceContext,
  checkDuration,
  isProcError,
  jsonProblem,
} from "@proc/core";
import { type CronSchedule, cronProblems, parseCron } from "./cron.js";

/** What a periodic task receives: the tick, in Unix seconds, merged over `args`. */
export interface PeriodicArgs {
  timestamp: number;
}

export interface PeriodicOptions<Args = PeriodicArgs> {
  /** 5 fields (minute first) or 6 (seconds first), e.g. "*\/10 * * * *"; aliases like "@daily" work too. */
  cron: string;
  /** Tells apart several schedules of one task; (task, periodicId) must be unique. @defaultValue "" */
  periodicId?: string;
  /** Static args of every job; `timestamp` is added by the scheduler. @defaultValue {} */
  args?: Omit<Args, "timestamp">;
  /** @defaultValue the task's queue */
  queue?: string;
  /** @defaultValue the task's priority */
  priority?: number;
  /** @defaultValue the task's lock */
  lock?: string | null;
  /** A tick whose queueing lock is taken by a todo job is skipped. @defaultValue the task's queueing lock */
  queueingLock?: string | null;
  /** IANA time zone the expression is read in. @defaultValue "UTC" */
  timezone?: string;
  /** Ticks missed (downtime, clock jump) are still deferred if at most this many ms old. @defaultValue the scheduler's maxDelay (10 minutes) */
  maxDelay?: number;
}

/** A registered schedule. */
export interface PeriodicHandle {
  readonly taskName: string;
  readonly periodicId: string;
  readonly cron: string;
  readonly timezone: string;
  /** The first tick strictly after `after` (default: now). */
  nextTick(after?: Date): Date;
}

export interface SchedulerOptions {
  /**
   * The longest the scheduler sleeps before looking at the clock again, in ms. Bounds
   * how late a tick is deferred after the wall clock jumps, or after a schedule is
   * added while the scheduler already runs. At most 2147483647, the longest timer
   * Node.js can set. @defaultValue 5000
   */
  maxSleep?: number;
  /** Default `maxDelay` of periodic tasks, in ms. @defaultValue 600000 (10 minutes) */
  maxDelay?: number;
  /**
   * Delete finished jobs once they are this old, by status and queue, in bounded batches, as
   * a service every worker runs: `{ succeeded: "1d", failed: "30d", queues: { audit: { succeeded: null } } }`.
   * @defaultValue none: finished jobs are kept
   */
  retention?: RetentionOptions;
}

/**
 * Rejects, at compile time, a task whose args declare a `timestamp` that is not a
 * number; tasks that ignore the timestamp (or take untyped args) are fine.
 */
export type AcceptsTimestamp<Args> = "timestamp" extends keyof Args
  ? number extends Args["timestamp" & keyof Args]
    ? unknown
    : { "a periodic task's args.timestamp must accept a number (Unix seconds)": never }
  : unknown;

/** Makes `args` required when the task needs args besides `timestamp`. */
export type PeriodicArgsOption<Args> =
  Record<never, never> extends Omit<Args, "timestamp"> ? unknown : { args: Omit<Args, "timestamp"> };

/** What `app.use(scheduler())` adds to the app. */
export interface SchedulerExtension {
  /** Defer `task` on a cron schedule; exactly one job per tick, whatever the number of workers. */
  periodic<Args>(
    options: PeriodicOptions<Args> & PeriodicArgsOption<Args>,
    task: Task<Args, unknown> & AcceptsTimestamp<Args>,
  ): PeriodicHandle;
  /** Every schedule added with `periodic()`, in order (the dashboard's periodic tasks page reads them). */
  periodicSchedules(): readonly PeriodicHandle[];
}

const DEFAULTS = { maxSleep: 5_000, maxDelay: 600_000 } as const;

interface Schedule {
  handle: PeriodicHandle;
  cron: CronSchedule;
  /** The job of a tick, but for args.timestamp. */
  job: NewJob;
  maxDelaySeconds: number;
}

/**
 * The scheduler plugin: adds `app.periodic(...)` and a worker service, "scheduler",
 * that every worker runs. The database dedups ticks, so any number of workers may run it.
 */
export function scheduler(options: SchedulerOptions = {}): Plugin<SchedulerExtension> {
  const problems: string[] = [];
  const maxSleep = options.maxSleep ?? DEFAULTS.maxSleep;
  const maxDelay = options.maxDelay ?? DEFAULTS.maxDelay;
  // maxSleep is a timer's delay; maxDelay is only compared with the clock, so any finite span works.
  const sleepProblem = checkDuration("maxSleep", maxSleep);
  if (sleepProblem) problems.push(sleepProblem);
  if (!(Number.isFinite(maxDelay) && maxDelay >= 0))
    problems.push(`maxDelay must be a number of ms >= 0 (got ${String(maxDelay)})`);
  if (problems.length) throw new InvalidOptions("scheduler", problems);
  const retention = options.retention ? retentionRules(options.retention) : null;

  return {
    name: "scheduler",
    setup(app) {
      const registry = new Scheduler(app, { maxSleep, maxDelay });
      app.addWorkerService({ name: "scheduler", run: (ctx) => registry.run(ctx) });
      if (retention?.rules.length)
        app.addWorkerService({
          name: "retention",
          run: (ctx) => runRetention(ctx, retention.rules, retention.interval, retention.batchSize),
        });
      return {
        periodic: <Args>(
          o: PeriodicOptions<Args> & PeriodicArgsOption<Args>,
          task: Task<Args, unknown> & AcceptsTimestamp<Args>,
        ) => registry.add(o, task),
        periodicSchedules: () => registry.handles(),
      };
    },
  };
}

/**
 * `app.periodic(options, task)` as a function, for code that holds a plain `App`
 * (plugins, typed without the scheduler's extension). Needs `app.use(scheduler())`.
 */
export function periodic<Args>(
  app: App,
  options: PeriodicOptions<Args> & PeriodicArgsOption<Args>,
  task: Task<Args, unknown> & AcceptsTimestamp<Args>,
): PeriodicHandle {
  const withScheduler = app as App & Partial<SchedulerExtension>;
  if (typeof withScheduler.periodic !== "function")
    throw new InvalidOptions("periodic", [
      "this app has no scheduler: add it first with app.use(scheduler()) (from @proc/scheduler)",
    ]);
  return withScheduler.periodic(options, task);
}

class Scheduler {
  readonly #app: App;
  readonly #maxSleep: number;
  readonly #maxDelay: number;
  readonly #schedules: Schedule[] = [];

  constructor(app: App, options: { maxSleep: number; maxDelay: number }) {
    this.#app = app;
    this.#maxSleep = options.maxSleep;
    this.#maxDelay = options.maxDelay;
  }

  handles(): readonly PeriodicHandle[] {
    return this.#schedules.map((s) => s.handle);
  }

  add<Args>(options: PeriodicOptions<Args>, task: Task<Args, unknown>): PeriodicHandle {
    if (typeof options !== "object" || options === null)
      throw new InvalidOptions("periodic", ["expected options such as { cron: '*/5 * * * *' }"]);
    const taskName = typeof task?.name === "string" ? task.name : "?";
    const where = `periodic task ${JSON.stringify(taskName)}`;
    const periodicId = options.periodicId ?? "";
    const timezone = options.timezone ?? "UTC";
    const maxDelay = options.maxDelay ?? this.#maxDelay;
    const args = (options.args ?? {}) as JsonObject;

    const problems = cronProblems(options.cron, timezone);
    if (!task || this.#app.getTask(taskName) !== (task as unknown))
      problems.push("task: expected a task registered on this app with app.task(...)");
    if (typeof periodicId !== "string") problems.push("periodicId must be a string");
    if (!(Number.isFinite(maxDelay) && maxDelay >= 0))
      problems.push(`maxDelay must be a number of ms >= 0 (got ${String(maxDelay)})`);
    if (typeof args !== "object" || args === null || Array.isArray(args))
      problems.push("args must be a JSON object");
    else if ("timestamp" in args)
      problems.push("args.timestamp is reserved: the scheduler sets it to the tick of each job");
    else {
      const problem = jsonProblem(args, "args");
      if (problem) problems.push(problem);
    }
    if (this.#schedules.some((s) => s.handle.taskName === taskName && s.handle.periodicId === periodicId))
      problems.push(
        `task ${JSON.stringify(taskName)} is already scheduled with periodicId ${JSON.stringify(periodicId)}; ` +
          "give each schedule of a task its own periodicId",
      );
    let jobOptions: Readonly<JobOptions> | undefined;
    if (problems.length === 0) {
      try {
        // configure() merges the task's own queue/priority/locks with ours and validates them.
        jobOptions = task.configure({
          queue: options.queue,
          priority: options.priority,
          lock: options.lock,
          queueingLock: options.queueingLock,
        }).options;
      } catch (error) {
        if (!isProcError(error, "INVALID_ARGS")) throw error;
        problems.push(...(error as InvalidArgs).issues);
      }
    }
    if (problems.length || !jobOptions) throw new InvalidOptions(where, problems);

    // H fields spread schedules by task, the same way in every process.
    const cron = parseCron(options.cron, timezone, { where, hashSeed: `${taskName}:${periodicId}` });
    const handle: PeriodicHandle = {
      taskName,
      periodicId,
      cron: options.cron,
      timezone,
      nextTick: (after = new Date()) => new Date(cron.nextAfter(Math.floor(after.getTime() / 1000)) * 1000),
    };
    this.#schedules.push({
      handle,
      cron,
      job: {
        task: taskName,
        queue: jobOptions.queue ?? "default",
        priority: jobOptions.priority ?? 0,
        lock: jobOptions.lock ?? null,
        queueingLock: jobOptions.queueingLock ?? null,
        args,
        scheduledAt: null,
      },
      maxDelaySeconds: maxDelay / 1000,
    });
    return handle;
  }

  /**
   * The worker service. Each run keeps its own cursor per schedule (the last tick it
   * handled), so several runs in one process or many processes never share state;
   * the database's periodic_defers table makes each tick deferred once.
   */
  async run(ctx: WorkerServiceContext): Promise<void> {
    const cursors = new Map<Schedule, number>();
    let failures = 0;
    while (!ctx.signal.aborted) {
      // The earliest next tick (none: Infinity).
      let wakeAt = Number.POSITIVE_INFINITY;
      try {
        // A copy: app.periodic() may add schedules while we await the database.
        for (const schedule of [...this.#schedules]) {
          if (ctx.signal.aborted) return;
          await this.#deferDue(schedule, cursors, ctx);
          const next = schedule.cron.nextAfter(cursors.get(schedule)!);
          wakeAt = Math.min(wakeAt, next * 1000);
        }
        failures = 0;
      } catch (error) {
        // Most likely the database is unreachable: keep the cursors (the failed tick is
        // tried again, until it is older than maxDelay) and back off.
        failures++;
        ctx.logger.error({ action: "periodic_error", error }, "the scheduler could not defer periodic jobs");
        wakeAt = Date.now() + Math.min(this.#maxSleep, 250 * 2 ** failures);
      }
      const ms = Math.max(0, wakeAt - Date.now());
      // A timer wakes at least every maxSleep, to notice a wall-clock jump or a schedule
      // added meanwhile. A host that drives time itself (ctx.sleep, as @proc/testing does)
      // wakes the service on both, so it sleeps until the next tick.
      await (ctx.sleep ? ctx.sleep(ms) : sleep(Math.min(ms, this.#maxSleep), ctx.signal));
    }
  }

  /** Defer every due tick of one schedule, skipping those older than its maxDelay. */
  async #deferDue(schedule: Schedule, cursors: Map<Schedule, number>, ctx: WorkerServiceContext) {
    const { taskName: task, periodicId } = schedule.handle;
    let cursor = cursors.get(schedule);
    if (cursor === undefined) {
      // First look at this schedule: resume after the last tick anyone deferred, so
      // ticks missed while no scheduler ran are caught up. A schedule never deferred
      // before starts now: its past is not "missed".
      const last = await ctx.app.jobManager.lastPeriodicTick(task, periodicId);
      cursor = last ?? Math.floor(Date.now() / 1000) - 1;
      cursors.set(schedule, cursor);
    }
    const now = Date.now() / 1000;
    // Whole seconds: a tick handled within its own second is on time even with maxDelay 0.
    const oldest = Math.floor(now - schedule.maxDelaySeconds);
    let tick = schedule.cron.nextAfter(cursor);
    if (tick < oldest) {
      // Jump over the whole missed range at once: an every-second schedule down for
      // a week has 600k ticks, which we neither iterate nor log one by one.
      ctx.logger.warn(
        { action: "periodic_skip_missed", task, periodicId, tick, resumeAt: oldest },
        "skipped periodic ticks older than maxDelay (from tick up to resumeAt)",
      );
      cursor = oldest - 1;
      cursors.set(schedule, cursor);
      tick = schedule.cron.nextAfter(cursor);
    }
    while (tick <= Date.now() / 1000 && !ctx.signal.aborted) {
      await this.#defer(schedule, tick, ctx);
      cursors.set(schedule, tick);
      tick = schedule.cron.nextAfter(tick);
    }
  }

  async #defer(schedule: Schedule, tick: number, ctx: WorkerServiceContext): Promise<void> {
    const { taskName: task, periodicId } = schedule.handle;
    const job: NewJob = { ...schedule.job, args: { ...schedule.job.args, timestamp: tick } };
    const id = await ctx.app.jobManager.deferPeriodicJob(periodicId, tick, job);
    if (id === null) {
      // Both cases are normal and need no action, so the SQL does not tell them apart.
      ctx.logger.debug(
        { action: "periodic_already_deferred", task, periodicId, tick },
        "periodic tick already deferred by another scheduler, or its queueing lock is taken",
      );
      return;
    }
    ctx.logger.info({ action: "periodic_defer", task, periodicId, tick, jobId: id }, "deferred periodic job");
    ctx.app.emit("job:deferred", { ids: [id], task, queue: job.queue });
  }
}
