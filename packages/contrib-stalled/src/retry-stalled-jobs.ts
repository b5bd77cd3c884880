import {
  type App,
  InvalidOptions,
  type Job,
  type JobContext,
  type JobManager,
  type Plugin,
} from "@proc/core";
import { type PeriodicArgs, type SchedulerExtension, cronProblems, periodic } from "@proc/scheduler";

/** The name of the periodic task the plugin registers; also its queueing lock. */
export const RETRY_STALLED_JOBS_TASK = "proc:retry_stalled_jobs";

export interface RetryStalledJobsOptions {
  /** How often to look for stalled jobs (6 fields: seconds first). @defaultValue "*\/10 * * * * *" (every 10 s) */
  cron?: string;
  /**
   * A doing job is stalled when its worker's last heartbeat is older than this (or its
   * worker row is gone). Keep it well above the worker's heartbeat interval. @defaultValue 30
   */
  heartbeatSeconds?: number;
  /**
   * Legacy mode: a doing job is stalled when it has run longer than this, whatever its
   * worker. Retries long jobs of live workers too: prefer heartbeat mode.
   */
  nbSeconds?: number;
  /** Only recover jobs of these queues. @defaultValue every queue */
  queues?: readonly string[];
  /** Only recover jobs of these tasks. @defaultValue every task */
  tasks?: readonly string[];
  /**
   * A job found stalled after this many recoveries is marked failed (StalledJobError)
   * instead: a job that kills its worker must not kill every worker in turn. @defaultValue 3
   */
  maxStalledRetries?: number;
  /** Delete worker rows silent for more than 2 × heartbeatSeconds. @defaultValue true */
  pruneWorkers?: boolean;
  /** Queue of the plugin's own jobs: some worker must listen to it. @defaultValue "default" */
  taskQueue?: string;
  /**
   * Priority of the plugin's own jobs: above ordinary work, so that recovery does not
   * wait behind a backlog. @defaultValue 1000
   */
  taskPriority?: number;
}

/** The stored result of each run of the plugin's task. */
export interface RetryStalledJobsResult {
  retried: number[];
  failed: number[];
  /** Stalled jobs whose abort had been requested: they end aborted, not retried. */
  aborted: number[];
  prunedWorkers: number[];
}

const DEFAULTS = {
  cron: "*/10 * * * * *",
  heartbeatSeconds: 30,
  maxStalledRetries: 3,
  pruneWorkers: true,
  taskQueue: "default",
  taskPriority: 1000,
} as const;

/**
 * A plugin that recovers stalled jobs: every 10 s (by default) it puts back to `todo`
 * the doing jobs whose worker stopped heartbeating, and fails those that stalled too
 * often. Needs the scheduler: `app.use(scheduler()).use(retryStalledJobs())`.
 */
export function retryStalledJobs(options: RetryStalledJobsOptions = {}): Plugin {
  const settings = resolveOptions(options);
  return {
    name: "retry-stalled-jobs",
    setup(app) {
      if (typeof (app as App & Partial<SchedulerExtension>).periodic !== "function")
        throw new InvalidOptions("retryStalledJobs", [
          "it needs the scheduler plugin, added before it: new App(...).use(scheduler()).use(retryStalledJobs())",
        ]);
      const task = app.task(
        // A queueing lock and deliberately no lock (Procrastinate #1408): the queueing
        // lock only guards todo jobs, so when a worker dies while running this task, its
        // doing job neither blocks the next tick's defer nor, as a lock would, the next
        // run; the next run recovers it like any other stalled job.
        {
          name: RETRY_STALLED_JOBS_TASK,
          queue: settings.taskQueue,
          priority: settings.taskPriority,
          queueingLock: RETRY_STALLED_JOBS_TASK,
        },
        (_args: PeriodicArgs, ctx) => recoverStalledJobs(app.jobManager, settings, ctx),
      );
      periodic(app, { cron: settings.cron }, task);
      return {};
    },
  };
}

type Settings = Required<Omit<RetryStalledJobsOptions, "nbSeconds" | "queues" | "tasks">> &
  Pick<RetryStalledJobsOptions, "nbSeconds" | "queues" | "tasks">;

function resolveOptions(options: RetryStalledJobsOptions): Settings {
  const settings: Settings = { ...DEFAULTS, ...stripUndefined(options) };
  const problems = cronProblems(settings.cron, "UTC");
  const positive = (name: string, value: unknown) => {
    if (!(typeof value === "number" && Number.isFinite(value) && value > 0))
      problems.push(`${name} must be a positive number of seconds (got ${String(value)})`);
  };
  positive("heartbeatSeconds", settings.heartbeatSeconds);
  if (settings.nbSeconds !== undefined) {
    positive("nbSeconds", settings.nbSeconds);
    if (options.heartbeatSeconds !== undefined)
      problems.push(
        "heartbeatSeconds and nbSeconds are two modes: give heartbeatSeconds (recommended) or nbSeconds (legacy), not both",
      );
  }
  const m = settings.maxStalledRetries;
  if (!(m === Number.POSITIVE_INFINITY || (Number.isInteger(m) && m >= 0)))
    problems.push(`maxStalledRetries must be an integer >= 0 or Infinity (got ${String(m)})`);
  for (const key of ["queues", "tasks"] as const) {
    const list = settings[key];
    if (list !== undefined && !(Array.isArray(list) && list.every((v) => typeof v === "string")))
      problems.push(`${key} must be an array of names`);
  }
  if (typeof settings.pruneWorkers !== "boolean") problems.push("pruneWorkers must be a boolean");
  if (typeof settings.taskQueue !== "string" || settings.taskQueue === "")
    problems.push("taskQueue must be a queue name");
  if (!Number.isInteger(settings.taskPriority)) problems.push("taskPriority must be an integer");
  if (problems.length) throw new InvalidOptions("retryStalledJobs", problems);
  return settings;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** One run of the plugin's task. */
async function recoverStalledJobs(
  jobManager: JobManager,
  settings: Settings,
  ctx: JobContext<PeriodicArgs>,
): Promise<RetryStalledJobsResult> {
  const result: RetryStalledJobsResult = { retried: [], failed: [], aborted: [], prunedWorkers: [] };
  const mode = settings.nbSeconds === undefined ? "heartbeat" : "nbSeconds";
  for (const job of await findStalledJobs(jobManager, settings)) {
    // Never our own run (in legacy mode a short nbSeconds could match it).
    if (job.id === ctx.job.id) continue;
    // Distinct keys: ctx.logger is already bound to this plugin's own job (jobId, task).
    const fields = {
      stalledJobId: job.id,
      stalledTask: job.task,
      stalledQueue: job.queue,
      deadWorkerId: job.workerId,
      previousStalledCount: job.stalledCount,
    };
    if (job.stalledCount >= settings.maxStalledRetries) {
      const message =
        mode === "heartbeat"
          ? `job ${job.id} stalled again (worker ${job.workerId} stopped sending heartbeats) after ` +
            `${job.stalledCount} recoveries; maxStalledRetries is ${settings.maxStalledRetries}, so it is not retried`
          : `job ${job.id} ran longer than nbSeconds (${settings.nbSeconds}) again after ` +
            `${job.stalledCount} recoveries; maxStalledRetries is ${settings.maxStalledRetries}, so it is not retried`;
      // Only while still doing the run we saw: a job that finished or was recovered
      // in the meantime keeps its outcome.
      const status = await jobManager.failJob(job, {
        status: "failed",
        error: { name: "StalledJobError", message, workerId: job.workerId, stalledCount: job.stalledCount },
      });
      if (status === "failed") {
        result.failed.push(job.id);
        ctx.logger.error({ action: "fail_stalled_job", ...fields }, message);
      }
      continue;
    }
    // Fenced by the run we saw, as failJob above.
    const retried = await jobManager.retryJob(job);
    if (retried?.status === "aborted") {
      result.aborted.push(job.id);
      ctx.logger.warn(
        { action: "abort_stalled_job", ...fields },
        `stalled job ${job.id} (${job.task}) of worker ${job.workerId} had an abort requested: it ends aborted`,
      );
    } else if (retried) {
      result.retried.push(job.id);
      ctx.app.emit("job:recovered", { job: retried });
      ctx.logger.warn(
        {
          action: "retry_stalled_job",
          ...fields,
          queueingLockDropped: job.queueingLock !== null && retried.queueingLock === null,
        },
        `retried stalled job ${job.id} (${job.task}) of worker ${job.workerId}`,
      );
    }
  }
  if (settings.pruneWorkers) {
    // After the recovery, and with a margin over heartbeatSeconds, so that `proc workers`
    // still shows a worker that just died while its jobs are being recovered.
    result.prunedWorkers = await jobManager.pruneWorkers(settings.heartbeatSeconds * 2);
    if (result.prunedWorkers.length)
      ctx.logger.info(
        { action: "prune_workers", workerIds: result.prunedWorkers },
        `deleted ${result.prunedWorkers.length} dead worker row(s)`,
      );
  }
  return result;
}

async function findStalledJobs(jobManager: JobManager, settings: Settings): Promise<Job[]> {
  const queues = settings.queues ?? [undefined];
  const tasks = settings.tasks ?? [undefined];
  const byId = new Map<number, Job>();
  for (const queue of queues)
    for (const task of tasks)
      for (const job of await jobManager.getStalledJobs({
        heartbeatSeconds: settings.heartbeatSeconds,
        nbSeconds: settings.nbSeconds,
        queue,
        task,
      }))
        byId.set(job.id, job);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}
