import type { Connector, Listener, Queryable } from "./connector.js";
import {
  AlreadyEnqueued,
  InvalidArgs,
  InvalidOptions,
  JobNotFound,
  type UniqueViolation,
  WaitTimeout,
  isProcError,
} from "./errors.js";
import {
  FINAL_STATUSES,
  type FetchedJobRow,
  type Job,
  type JobError,
  type JobHeaders,
  type JobRow,
  type JobStatus,
  type RateLimit,
  fetchedJobFromRow,
  jobFromRow,
} from "./job.js";
import type { JsonObject, JsonValue } from "./json.js";
import type { Logger } from "./logger.js";
import type { QueryName, SqlCatalog } from "./sql.js";
import type { OnConflict } from "./task.js";
import { NAME_LIMITS, checkDuration, checkName } from "./validate.js";

/** A job to insert, already validated by the deferrer. */
export interface NewJob {
  task: string;
  queue: string;
  priority: number;
  lock: string | null;
  queueingLock: string | null;
  args: JsonObject;
  scheduledAt: Date | null;
  /** Set by defer interceptors (app.interceptDefer); omitted or null: none. */
  headers?: JobHeaders | null;
  /** What a taken queueing lock does (JobOptions.onConflict); the same for every job of a call. @defaultValue "error" */
  onConflict?: OnConflict;
  /** Flow control (concurrency and rate limits, expiry, throttle); omitted: none. */
  flow?: NewJobFlow | null;
}

/** A new job's flow control, resolved from its options (JobOptions). */
export interface NewJobFlow {
  concurrencyKey: string | null;
  concurrencyLimit: number | null;
  rateLimit: RateLimit | null;
  expireAt: Date | null;
  /** The queueing lock's throttle window (JobOptions.uniqueFor), in ms. */
  uniqueForMs: number | null;
}

/** What one claim (JobManager.claimJobs) found. */
export interface Claim {
  /** The jobs claimed, now doing, in the order they should start. */
  jobs: Job[];
  /** Jobs with a limit were held back (a slot of the worker, or of their key or queue, was missing). */
  held: boolean;
  /** Jobs expired meanwhile (cancelled unrun): more may be ready now. */
  more: boolean;
  /** When the earliest full rate window opens, if any. */
  wakeAt: Date | null;
  /** The queues that have limits (a run of theirs ending may let another start). */
  limitedQueues: readonly string[];
  /**
   * The claim's size as the database sent it (characters of JSON): about the memory its
   * jobs hold until they have run, which a worker bounds (its prefetchBytes option).
   */
  bytes: number;
}

/** A queue's limits across every worker (JobManager.setQueueLimits). */
export interface QueueLimits {
  /** At most this many of its jobs run at once. */
  maxRunning?: number | null;
  /** At most `max` of its jobs start per `per` ms. */
  rateLimit?: { max: number; per: number } | null;
}

export interface ListJobsFilter {
  queue?: string;
  task?: string;
  status?: JobStatus | JobStatus[];
  lock?: string;
  queueingLock?: string;
  id?: number;
  /** Keyset pagination: only jobs with an id lower than this. */
  beforeId?: number;
  /** @defaultValue 100 */
  limit?: number;
}

export interface StalledJobsOptions {
  /** Legacy mode: jobs running for more than this many seconds, whatever their worker. */
  nbSeconds?: number;
  /** Jobs whose worker's last heartbeat is older than this many seconds (or whose worker row is gone). @defaultValue 30 */
  heartbeatSeconds?: number;
  queue?: string;
  task?: string;
}

export interface RetryJobOptions {
  /** When to run it (default: now). */
  at?: Date;
  queue?: string;
  priority?: number;
  lock?: string;
}

export interface CancelJobOptions {
  /** Also ask a running (doing) job to abort: its ctx.signal fires. */
  abort?: boolean;
  /** Delete a todo job instead of marking it cancelled. */
  delete?: boolean;
}

export interface Counts {
  name: string;
  todo: number;
  doing: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  aborted: number;
}

export interface WorkerInfo {
  id: number;
  name: string;
  host: string;
  pid: number;
  queues: string[] | null;
  concurrency: number;
  startedAt: Date;
  lastHeartbeatAt: Date;
  /** Jobs this worker is running now. */
  doing: number;
}

export interface QueueGauges {
  queue: string;
  todo: number;
  ready: number;
  doing: number;
  oldestReadySeconds: number;
}

export interface JobOutcome {
  id: number;
  status: JobStatus;
  result: JsonValue | null;
  error: JobError | null;
}

/** One run of a job, as a worker claimed it: the job's id and its run number. */
export interface RunRef {
  id: number;
  run: number;
}

export interface Completion extends RunRef {
  result: JsonValue | null;
}

/** What a heartbeat learns about the runs its worker holds. */
export interface Heartbeat {
  /** false: the worker row was pruned (register again). */
  workerFound: boolean;
  /** Held runs whose abort was requested. */
  abortJobIds: number[];
  /** Held runs that are no longer doing that run: recovered (and maybe claimed again) elsewhere. */
  lostJobIds: number[];
}

export interface FailOptions {
  status: "failed" | "aborted" | "todo";
  error: JobError;
  /** For status "todo": when and where to retry. */
  retry?: { at: Date; queue?: string; priority?: number; lock?: string };
  /** Delete the job instead of keeping it failed/aborted. */
  delete?: boolean;
}

/**
 * The only code that names SQL operations. Every method takes an optional
 * `Queryable` so it can run inside a caller's transaction.
 */
export class JobManager {
  readonly #connector: Connector;
  readonly #sql: SqlCatalog;
  readonly #logger: Logger;
  #doneListener: Promise<Listener> | null = null;
  readonly #waiters = new Map<number, Set<(outcome: JobOutcome | null) => void>>();

  readonly #queryable: Queryable;

  constructor(connector: Connector, sql: SqlCatalog, logger: Logger, queryable: Queryable = connector) {
    this.#connector = connector;
    this.#sql = sql;
    this.#logger = logger;
    this.#queryable = queryable;
  }

  /**
   * The same operations, run on `queryable` (for example connections reserved with
   * `connector.reserve()`); LISTEN still goes through the connector.
   */
  on(queryable: Queryable): JobManager {
    return new JobManager(this.#connector, this.#sql, this.#logger, queryable);
  }

  /** NOTIFY channel for new jobs and abort requests (the worker listens to it). */
  get channel(): string {
    return this.#sql.channel;
  }

  #run<R>(name: QueryName, params: readonly unknown[], q: Queryable = this.#queryable): Promise<R[]> {
    return q.query<R>(this.#sql.queries[name], params);
  }

  // ---- defer ----------------------------------------------------------------

  /** Insert jobs atomically; returns ids in order. Translates queueing-lock conflicts. */
  async deferJobs(jobs: readonly NewJob[], q?: Queryable): Promise<number[]> {
    if (jobs.length === 0) return [];
    // One array per column (see defer_jobs_v1), the args as one JSON array. A column
    // whose value is the same for every job (a batch of one task) is sent once.
    const n = jobs.length;
    const first = jobs[0]!;
    const onConflict = first.onConflict ?? "error";
    if (jobs.some((j) => (j.onConflict ?? "error") !== onConflict))
      throw new InvalidOptions("deferJobs", ["onConflict: every job of one call must have the same mode"]);
    const firstAt = first.scheduledAt?.getTime() ?? null;
    const same = {
      queue: true,
      task: true,
      priority: true,
      lock: true,
      queueingLock: true,
      scheduledAt: true,
    };
    const args = new Array<unknown>(n);
    // Headers travel as one JSON array, or NULL when no job has any (an app without a
    // plugin that sets them): nothing to send, and nothing stored. Flow options likewise.
    let anyHeaders = false;
    let anyFlow = false;
    for (let i = 0; i < n; i++) {
      const job = jobs[i]!;
      args[i] = job.args;
      anyHeaders ||= job.headers != null;
      anyFlow ||= job.flow != null;
      if (i === 0) continue;
      same.queue &&= job.queue === first.queue;
      same.task &&= job.task === first.task;
      same.priority &&= job.priority === first.priority;
      same.lock &&= job.lock === first.lock;
      same.queueingLock &&= job.queueingLock === first.queueingLock;
      same.scheduledAt &&= (job.scheduledAt?.getTime() ?? null) === firstAt;
    }
    const column = <T>(isSame: boolean, value: (job: NewJob) => T): T[] =>
      isSame ? [value(first)] : jobs.map(value);
    let argsJson: string;
    try {
      argsJson = JSON.stringify(args);
    } catch (error) {
      throw new InvalidArgs(
        `args are not JSON-serialisable: ${(error as Error).message}; nothing was deferred`,
        [],
        { cause: error },
      );
    }
    try {
      const [row] = await this.#run<{ ids: string | null }>(
        anyFlow ? "defer_jobs_flow" : onConflict === "error" ? "defer_jobs" : "defer_jobs_on_conflict",
        [
          column(same.queue, (j) => j.queue),
          column(same.task, (j) => j.task),
          column(same.priority, (j) => j.priority),
          column(same.lock, (j) => j.lock),
          column(same.queueingLock, (j) => j.queueingLock),
          argsJson,
          column(same.scheduledAt, (j) => j.scheduledAt?.toISOString() ?? null),
          anyHeaders ? JSON.stringify(jobs.map((j) => j.headers ?? null)) : null,
          ...(anyFlow ? [onConflict, flowJson(jobs)] : onConflict === "error" ? [] : [onConflict]),
        ],
        q,
      );
      return row?.ids ? row.ids.split(",").map(Number) : [];
    } catch (error) {
      throw translateQueueingLock(error, jobs);
    }
  }

  // ---- worker operations ----------------------------------------------------

  /** Claim up to `limit` ready jobs for a worker in one round trip (see claimJobs). */
  async fetchJobs(workerId: number, queues: readonly string[] | null, limit: number): Promise<Job[]> {
    return (await this.claimJobs(workerId, queues, limit, limit)).jobs;
  }

  /**
   * Claim up to `limit` ready jobs for a worker in one round trip, of which jobs with a
   * limit (concurrency, rate, or their queue's) at most `idle`: what the worker can start
   * soon, so that a limited job is not held for long without running. Says what flow
   * control held back (see Claim).
   */
  async claimJobs(
    workerId: number,
    queues: readonly string[] | null,
    limit: number,
    idle: number,
  ): Promise<Claim> {
    const fetch = async (): Promise<Claim> => {
      const [row] = await this.#run<{ jobs: string | null }>("fetch_jobs", [workerId, queues, limit, idle]);
      const text = row?.jobs ?? null;
      const rows: FetchedJobRow[] = text === null ? [] : JSON.parse(text);
      // The last row has a NULL id when there is something to tell (fetch_jobs_v4).
      const last = rows[rows.length - 1];
      const info = last && last[0] === null ? (rows.pop()![16] as unknown as ClaimInfo) : null;
      return {
        jobs: rows.map((job) => fetchedJobFromRow(job, workerId)),
        held: info?.held ?? false,
        more: info?.more ?? false,
        wakeAt: info?.wakeAtMs != null ? new Date(info.wakeAtMs) : null,
        limitedQueues: info?.limitedQueues ?? [],
        bytes: text?.length ?? 0,
      };
    };
    try {
      return await fetch();
    } catch (error) {
      // Two fetchers raced for two jobs of one lock (see fetch_jobs_v1); the retry
      // sees the winner's committed row and skips the lock.
      if (isProcError(error, "UNIQUE_VIOLATION") && (error as UniqueViolation).constraint === "jobs_lock_idx")
        return fetch();
      throw error;
    }
  }

  /**
   * Mark runs succeeded in one call; returns the ids actually finished. A run that is
   * missing from them was stale: its job was recovered, or claimed again, meanwhile.
   */
  async completeJobs(completions: readonly Completion[], deleteJobs = false): Promise<number[]> {
    if (completions.length === 0) return [];
    let anyResult = false;
    for (const c of completions) if (c.result !== undefined && c.result !== null) anyResult = true;
    const results = anyResult ? JSON.stringify(completions.map((c) => c.result ?? null)) : null;
    const [ids, runs] = runArrays(completions);
    const [row] = await this.#run<{ ids: string | null }>("complete_jobs", [ids, runs, results, deleteJobs]);
    return row?.ids ? row.ids.split(",").map(Number) : [];
  }

  /**
   * End a run that did not succeed; returns the job's new status, or null when the
   * job was no longer doing that run (a stale outcome: nothing was written).
   */
  async failJob(run: RunRef, options: FailOptions): Promise<JobStatus | null> {
    const r = options.retry;
    const [row] = await this.#run<{ status: JobStatus | null }>("fail_job", [
      run.id,
      run.run,
      options.status,
      JSON.stringify(options.error),
      r?.at ?? null,
      r?.queue ?? null,
      r?.priority ?? null,
      r?.lock ?? null,
      options.delete ?? false,
    ]);
    return row?.status ?? null;
  }

  async registerWorker(info: {
    name: string;
    host: string;
    pid: number;
    queues: readonly string[] | null;
    concurrency: number;
  }): Promise<number> {
    const [row] = await this.#run<{ id: string }>("register_worker", [
      info.name,
      info.host,
      info.pid,
      info.queues,
      info.concurrency,
    ]);
    return Number(row!.id);
  }

  /**
   * Beat for a worker that holds `runs` (running or prefetched). `silenceSeconds`: a
   * gap longer than this since any worker's last beat means the database was
   * unreachable to every worker, a silence stalled detection then does not count
   * (see heartbeat_worker_v2); pass about twice the heartbeat interval.
   */
  async heartbeatWorker(
    workerId: number,
    runs: readonly RunRef[] = [],
    silenceSeconds = 11,
  ): Promise<Heartbeat> {
    const [ids, runNumbers] = runArrays(runs);
    const [row] = await this.#run<{
      worker_found: boolean;
      abort_job_ids: Array<string | number>;
      lost_job_ids: Array<string | number>;
    }>("heartbeat_worker", [workerId, ids, runNumbers, silenceSeconds]);
    return {
      workerFound: row?.worker_found ?? false,
      abortJobIds: (row?.abort_job_ids ?? []).map(Number),
      lostJobIds: (row?.lost_job_ids ?? []).map(Number),
    };
  }

  async unregisterWorker(workerId: number): Promise<void> {
    await this.#run("unregister_worker", [workerId]);
  }

  /** Delete worker rows silent for more than `seconds`; returns their ids. */
  async pruneWorkers(seconds: number): Promise<number[]> {
    const rows = await this.#run<{ id: string }>("prune_workers", [seconds]);
    return rows.map((r) => Number(r.id));
  }

  /** The earliest future `scheduled_at` among todo jobs of these queues, or null. */
  async nextScheduledAt(queues: readonly string[] | null): Promise<Date | null> {
    const [row] = await this.#run<{ at: Date | string | null }>("next_scheduled_at", [queues]);
    return row?.at ? new Date(row.at) : null;
  }

  /** The runs the database says this worker is running. */
  async workerDoingJobs(workerId: number): Promise<RunRef[]> {
    const rows = await this.#run<{ id: string; run: number }>("worker_doing_jobs", [workerId]);
    return rows.map((r) => ({ id: Number(r.id), run: r.run }));
  }

  /**
   * Give back runs claimed but never started: back to todo, attempts restored, not a
   * stall (a newer todo job holding the queueing lock of one makes it go back without
   * it, as a retry does). Returns the ids given back.
   */
  async releaseJobs(runs: readonly RunRef[]): Promise<number[]> {
    if (runs.length === 0) return [];
    const rows = await this.#run<{ id: string }>("release_jobs", runArrays(runs));
    return rows.map((r) => Number(r.id));
  }

  /** Among these doing jobs, those asked to abort. */
  async abortRequestedJobs(jobIds: readonly number[]): Promise<number[]> {
    if (jobIds.length === 0) return [];
    const rows = await this.#run<{ id: string }>("abort_requested_jobs", [jobIds]);
    return rows.map((r) => Number(r.id));
  }

  // ---- periodic ------------------------------------------------------------

  /** Defer the job of one periodic tick exactly once across all processes; null when already done or locked. */
  async deferPeriodicJob(periodicId: string, timestamp: number, job: NewJob): Promise<number | null> {
    const payload = JSON.stringify({
      queue: job.queue,
      task: job.task,
      priority: job.priority,
      lock: job.lock,
      queueing_lock: job.queueingLock,
      args: job.args,
      scheduled_at: null,
    });
    const [row] = await this.#run<{ id: string | null }>("defer_periodic_job", [
      job.task,
      periodicId,
      timestamp,
      payload,
    ]);
    return row?.id == null ? null : Number(row.id);
  }

  /** The latest tick (Unix seconds) deferred for a periodic task, or null. */
  async lastPeriodicTick(task: string, periodicId: string): Promise<number | null> {
    const [row] = await this.#run<{ tick: string | null }>("last_periodic_tick", [task, periodicId]);
    return row?.tick == null ? null : Number(row.tick);
  }

  // ---- inspection and operations -------------------------------------------

  async getJob(id: number, q?: Queryable): Promise<Job | null> {
    const [row] = await this.#run<JobRow>("get_job", [id], q);
    return row ? jobFromRow(row) : null;
  }

  async listJobs(filter: ListJobsFilter = {}): Promise<Job[]> {
    const statuses =
      filter.status === undefined ? null : Array.isArray(filter.status) ? filter.status : [filter.status];
    const rows = await this.#run<JobRow>("list_jobs", [
      filter.queue ?? null,
      filter.task ?? null,
      statuses,
      filter.lock ?? null,
      filter.queueingLock ?? null,
      filter.id ?? null,
      filter.beforeId ?? null,
      filter.limit ?? 100,
    ]);
    return rows.map(jobFromRow);
  }

  /**
   * Doing jobs whose worker is gone. Heartbeat mode (default): the worker's last
   * heartbeat is older than `heartbeatSeconds` (30) or its row is gone. Legacy mode
   * (`nbSeconds`): the job has been running for longer than that.
   */
  async getStalledJobs(options: StalledJobsOptions = {}): Promise<Job[]> {
    const rows = await this.#run<JobRow>("get_stalled_jobs", [
      options.heartbeatSeconds ?? 30,
      options.nbSeconds ?? null,
      options.queue ?? null,
      options.task ?? null,
    ]);
    return rows.map(jobFromRow);
  }

  /**
   * Put a job back to `todo` (any status but todo). Retrying a `doing` job counts as a
   * stalled recovery; given a `doing` Job object (as getStalledJobs returns), the
   * retry happens only if the job is still doing the same run, so a job that finished
   * (or was recovered) meanwhile is not run again. A doing job whose abort was
   * requested is not run again: it ends `aborted`. When a newer todo job holds its
   * queueing lock, the job is retried without it: both run, neither is lost. Returns
   * the job as it is now, or null when nothing was done.
   */
  async retryJob(job: Job | number, options: RetryJobOptions = {}): Promise<Job | null> {
    const id = typeof job === "number" ? job : job.id;
    const doingRun = typeof job === "object" && job.status === "doing" ? job.run : null;
    const rows = await this.#run<JobRow>("retry_job", [
      id,
      options.at ?? null,
      options.queue ?? null,
      options.priority ?? null,
      options.lock ?? null,
      doingRun,
    ]);
    return rows[0] ? jobFromRow(rows[0]) : null;
  }

  /**
   * Cancel a todo job (`cancelled`, or deleted with `delete`); with `abort`, ask a
   * doing job to abort. Returns the job's status afterwards, or null if there is no
   * such job (for example it was deleted).
   */
  async cancelJob(id: number, options: CancelJobOptions = {}): Promise<JobStatus | null> {
    const [row] = await this.#run<{ status: JobStatus | null }>("cancel_job", [
      id,
      options.abort ?? false,
      options.delete ?? false,
    ]);
    return row?.status ?? null;
  }

  /**
   * Delete one job that is not running (a `doing` job is asked to abort with cancelJob
   * first). Returns the status it had, or null when nothing was deleted: no such job, or
   * it is doing.
   */
  async deleteJob(id: number): Promise<JobStatus | null> {
    const [row] = await this.#run<{ status: JobStatus }>("delete_job", [id]);
    return row?.status ?? null;
  }

  /** Delete finished jobs older than `olderThanHours`; returns how many. */
  async deleteOldJobs(options: { olderThanHours: number; statuses?: JobStatus[] }): Promise<number> {
    const statuses = options.statuses ?? ["succeeded", "failed", "cancelled", "aborted"];
    const [row] = await this.#run<{ count: number }>("delete_old_jobs", [options.olderThanHours, statuses]);
    return row?.count ?? 0;
  }

  /**
   * Delete at most `limit` jobs of one finished status that finished more than `olderThanMs`
   * ago, of `queue` (or any) except `exceptQueues`, oldest first; returns how many. One bounded
   * statement: retention (in @proc/scheduler) calls it until it deletes fewer than `limit`.
   */
  async deleteFinishedJobs(options: {
    status: JobStatus;
    olderThanMs: number;
    queue?: string | null;
    exceptQueues?: readonly string[] | null;
    limit: number;
  }): Promise<number> {
    if (!FINAL_STATUSES.includes(options.status))
      throw new InvalidOptions("deleteFinishedJobs", [
        `status: one of ${FINAL_STATUSES.join(", ")} (a job that is ${options.status} has not finished)`,
      ]);
    const [row] = await this.#run<{ count: number }>("delete_finished_jobs", [
      options.status,
      options.olderThanMs,
      options.queue ?? null,
      options.exceptQueues?.length ? options.exceptQueues : null,
      options.limit,
    ]);
    return row?.count ?? 0;
  }

  /**
   * Pause a queue: no worker claims its jobs until resumeQueue (workers drop its prefetched
   * jobs at once, running ones finish, deferring still works). Stored in the database, so it
   * outlives every worker. Returns false when it was paused already.
   */
  pauseQueue(queue: string): Promise<boolean> {
    return this.#pause(queue, true);
  }

  /** Resume a paused queue; false when it was not paused. */
  resumeQueue(queue: string): Promise<boolean> {
    return this.#pause(queue, false);
  }

  async #pause(queue: string, paused: boolean): Promise<boolean> {
    const problem = checkName("queue", queue, NAME_LIMITS.queue);
    if (problem) throw new InvalidOptions(paused ? "pauseQueue" : "resumeQueue", [problem]);
    const [row] = await this.#run<{ changed: boolean }>("pause_queue", [queue, paused]);
    return row?.changed ?? false;
  }

  /**
   * Set a queue's limits across every worker: `maxRunning` (at most this many of its jobs
   * run at once) and `rateLimit` (at most `max` starts per `per` ms, a sliding window).
   * Stored in the database; workers are told at once. Null or omitted clears that limit.
   */
  async setQueueLimits(queue: string, limits: QueueLimits): Promise<void> {
    const problems = queueLimitProblems(queue, limits);
    if (problems.length) throw new InvalidOptions("setQueueLimits", problems);
    await this.#run("set_queue_limits", [
      queue,
      limits.maxRunning ?? null,
      limits.rateLimit?.max ?? null,
      limits.rateLimit?.per ?? null,
    ]);
  }

  /** Remove every limit of a queue. */
  async clearQueueLimits(queue: string): Promise<void> {
    await this.setQueueLimits(queue, {});
  }

  /**
   * The limits in force and their use now: every queue limit (running and waiting jobs,
   * starts in the current rate window), the concurrency keys with active jobs, and the
   * rate keys with a window (at most `limit` of those two).
   */
  async listLimits(options: { limit?: number } = {}): Promise<Limits> {
    const [queues, keys] = await Promise.all([
      this.#run<QueueLimitRow>("list_queue_limits", []),
      this.#run<KeyLimitRow>("list_key_limits", [options.limit ?? 1000]),
    ]);
    return {
      queues: queues.map((r) => ({
        queue: r.queue,
        maxRunning: r.max_running,
        rateLimit: r.rate_max === null ? null : { max: r.rate_max, per: r.rate_per_ms! },
        running: r.running,
        waiting: r.waiting,
        windowStarts: r.window_starts,
      })),
      concurrencyKeys: keys
        .filter((r) => r.kind === "concurrency")
        .map((r) => ({ key: r.key, limit: r.max, running: r.running!, waiting: r.waiting! })),
      rateKeys: keys
        .filter((r) => r.kind === "rate")
        .map((r) => ({
          key: r.key,
          max: r.max,
          per: r.per_ms!,
          windowStarts: r.window_starts!,
          openAt: r.open_at === null ? null : new Date(r.open_at),
        })),
    };
  }

  /**
   * Cancel (reason "expired") up to `limit` todo jobs whose expireAt has passed; returns
   * their ids. A claim never starts an expired job anyway; this makes the ones no claim
   * reaches say so (the scheduler plugin runs it).
   */
  async expireJobs(limit = 1000): Promise<number[]> {
    const rows = await this.#run<{ id: string }>("expire_jobs", [limit]);
    return rows.map((r) => Number(r.id));
  }

  /** The paused queues, oldest pause first. */
  async listPausedQueues(): Promise<Array<{ queue: string; pausedAt: Date }>> {
    const rows = await this.#run<{ queue: string; paused_at: Date | string }>("list_paused_queues", []);
    return rows.map((r) => ({ queue: r.queue, pausedAt: new Date(r.paused_at) }));
  }

  listQueues(): Promise<Counts[]> {
    return this.#run<Counts>("list_queues", []);
  }

  /**
   * Per queue with active jobs: waiting (`todo`, of which `ready` can start now), running
   * (`doing`), and the age in seconds of the oldest ready job. Reads only active jobs (for
   * metrics gauges, read on every collection); finished jobs are in listQueues().
   */
  async queueGauges(): Promise<QueueGauges[]> {
    const rows = await this.#run<{
      queue: string;
      todo: number;
      ready: number;
      doing: number;
      oldest_ready_seconds: number;
    }>("queue_gauges", []);
    return rows.map((r) => ({
      queue: r.queue,
      todo: r.todo,
      ready: r.ready,
      doing: r.doing,
      oldestReadySeconds: r.oldest_ready_seconds,
    }));
  }

  listTasks(): Promise<Counts[]> {
    return this.#run<Counts>("list_tasks", []);
  }

  listLocks(): Promise<Array<{ name: string; todo: number; doing: number }>> {
    return this.#run("list_locks", []);
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    const rows = await this.#run<{
      id: string;
      name: string;
      host: string;
      pid: number;
      queues: string[] | null;
      concurrency: number;
      started_at: Date | string;
      last_heartbeat_at: Date | string;
      doing: number;
    }>("list_workers", []);
    return rows.map((r) => ({
      id: Number(r.id),
      name: r.name,
      host: r.host,
      pid: r.pid,
      queues: r.queues,
      concurrency: r.concurrency,
      startedAt: new Date(r.started_at),
      lastHeartbeatAt: new Date(r.last_heartbeat_at),
      doing: r.doing,
    }));
  }

  /**
   * Resolves when the job reaches a final status (succeeded, failed, cancelled,
   * aborted), with its result or error. Driven by NOTIFY on the "done" channel: one
   * shared listening connection serves every waiter of this app.
   */
  async waitForJob(id: number, options: { timeoutMs?: number } = {}): Promise<JobOutcome> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    // A timer above 2^31-1 ms fires after 1 ms: refuse it rather than time out at once.
    const problem = checkDuration("timeoutMs", timeoutMs);
    if (problem) throw new InvalidOptions("waitForJob", [problem]);
    let settle!: (outcome: JobOutcome | null) => void;
    const notified = new Promise<JobOutcome | null>((resolve) => {
      settle = resolve;
    });
    let set = this.#waiters.get(id);
    if (!set) {
      set = new Set();
      this.#waiters.set(id, set);
    }
    set.add(settle);
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.#ensureDoneListener();
      // Checked after LISTEN is in place, so a job finishing in between is not missed.
      const current = await this.#outcomes([id]);
      const now = current.get(id);
      if (!now) {
        // Deleted as it finished (deleteJobs) just before our check: its "done"
        // notification is then already on its way. Give it a moment to arrive.
        const late = await Promise.race([notified, sleep(DONE_GRACE_MS).then(() => null)]);
        if (late) return late;
        throw new JobNotFound(id);
      }
      if (FINAL_STATUSES.includes(now.status)) return now;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new WaitTimeout(id, timeoutMs)), timeoutMs);
      });
      const outcome = await Promise.race([notified, timeout]);
      if (!outcome) throw new JobNotFound(id);
      return outcome;
    } finally {
      clearTimeout(timer);
      set.delete(settle);
      if (set.size === 0) this.#waiters.delete(id);
    }
  }

  async #outcomes(ids: number[]): Promise<Map<number, JobOutcome>> {
    const rows = await this.#run<{ id: string; status: JobStatus; result: unknown; error: unknown }>(
      "job_statuses",
      [ids],
    );
    return new Map(
      rows.map((r) => [
        Number(r.id),
        {
          id: Number(r.id),
          status: r.status,
          result: (r.result as JsonValue) ?? null,
          error: (r.error as JobError) ?? null,
        },
      ]),
    );
  }

  #ensureDoneListener(): Promise<Listener> {
    this.#doneListener ??= this.#connector
      .listen({
        channels: [`${this.#sql.channel}_done`],
        onNotification: ({ payload }) => void this.#onDone(payload),
        onStateChange: (state) => {
          // Notifications are lost while disconnected: re-check every waited job.
          if (state === "connected") void this.#recheckWaiters();
        },
      })
      .catch((error) => {
        this.#doneListener = null;
        throw error;
      });
    return this.#doneListener;
  }

  async #onDone(payload: string): Promise<void> {
    let message: { status: JobStatus; ids: number[] };
    try {
      message = JSON.parse(payload);
    } catch {
      return;
    }
    const ids = message.ids.filter((id) => this.#waiters.has(id));
    if (ids.length === 0) return;
    try {
      const outcomes = await this.#outcomes(ids);
      for (const id of ids) {
        // A job deleted on completion (deleteJobs) has no row left: report the status.
        const outcome = outcomes.get(id) ?? { id, status: message.status, result: null, error: null };
        for (const settle of this.#waiters.get(id) ?? []) settle(outcome);
      }
    } catch (error) {
      this.#logger.warn({ action: "wait_for_job_error", error }, "could not read finished jobs for waiters");
    }
  }

  async #recheckWaiters(): Promise<void> {
    const ids = [...this.#waiters.keys()];
    if (ids.length === 0) return;
    try {
      const outcomes = await this.#outcomes(ids);
      for (const id of ids) {
        const outcome = outcomes.get(id);
        if (!outcome || FINAL_STATUSES.includes(outcome.status))
          for (const settle of this.#waiters.get(id) ?? []) settle(outcome ?? null);
      }
    } catch (error) {
      this.#logger.warn(
        { action: "wait_for_job_error", error },
        "could not re-check waited jobs after reconnecting",
      );
    }
  }

  /** Release the waiters' listening connection. Called by App.close(). */
  async close(): Promise<void> {
    const listener = this.#doneListener;
    this.#doneListener = null;
    if (listener) await (await listener.catch(() => null))?.close();
  }

  // ---- dashboard (@proc/dashboard) ------------------------------------------

  /**
   * Per queue: waiting, ready and running jobs, the oldest ready job's age, the failed,
   * cancelled and aborted jobs kept, the jobs that succeeded and failed in the last
   * `recentSeconds`, and whether it is paused. Reads partial indexes and recent jobs only.
   */
  async queueSummary(recentSeconds = 3600): Promise<QueueSummary[]> {
    const rows = await this.#run<{
      queue: string;
      todo: number;
      ready: number;
      doing: number;
      oldest_ready_seconds: number;
      failed: number;
      cancelled: number;
      aborted: number;
      recent_succeeded: number;
      recent_failed: number;
      paused_at: Date | string | null;
    }>("queue_summary", [recentSeconds]);
    return rows.map((r) => ({
      queue: r.queue,
      todo: r.todo,
      ready: r.ready,
      doing: r.doing,
      oldestReadySeconds: r.oldest_ready_seconds,
      failed: r.failed,
      cancelled: r.cancelled,
      aborted: r.aborted,
      recentSucceeded: r.recent_succeeded,
      recentFailed: r.recent_failed,
      pausedAt: r.paused_at === null ? null : new Date(r.paused_at),
    }));
  }

  /**
   * For each of the last `minutes` minutes, oldest first: the jobs that succeeded and that
   * failed (or aborted) in it, and their mean and longest wait from ready to started.
   */
  async throughputPerMinute(minutes = 60): Promise<ThroughputMinute[]> {
    const rows = await this.#run<{
      minute: Date | string;
      succeeded: number;
      failed: number;
      wait_mean_seconds: number | null;
      wait_max_seconds: number | null;
    }>("throughput_per_minute", [minutes]);
    return rows.map((r) => ({
      minute: new Date(r.minute),
      succeeded: r.succeeded,
      failed: r.failed,
      waitMeanSeconds: r.wait_mean_seconds,
      waitMaxSeconds: r.wait_max_seconds,
    }));
  }

  /**
   * Jobs matching `filter` among the ids [`fromId`, `beforeId`), newest first, at most
   * `limit`: the id range bounds the rows read whatever the filters (see jobIdAt for a time).
   */
  async searchJobs(filter: SearchJobsFilter & { limit?: number } = {}): Promise<Job[]> {
    const rows = await this.#run<JobRow>("search_jobs", [...searchParams(filter), filter.limit ?? 100]);
    return rows.map(jobFromRow);
  }

  /**
   * The id from which jobs were created at or after `at` (ids grow with time; a job
   * deferred in a transaction open for long may sit on the other side), or null when
   * there are no jobs. Bisects the primary key.
   */
  async jobIdAt(at: Date): Promise<number | null> {
    const [row] = await this.#run<{ id: string | null }>("job_id_at", [at]);
    return row?.id == null ? null : Number(row.id);
  }

  /** The highest job id below `id` (no id: the highest of all), or null. */
  async jobIdBelow(id?: number | null): Promise<number | null> {
    const [row] = await this.#run<{ id: string | null }>("job_id_below", [id ?? null]);
    return row?.id == null ? null : Number(row.id);
  }

  /**
   * Apply one action to the jobs matching `filter` (or to `filter.ids`) in one statement:
   * `retry` the finished ones, `cancel` the waiting ones, `delete` the finished ones.
   * Returns how many changed. Bound the rows with `fromId`/`beforeId` and call it per range.
   */
  async bulkJobs(action: "retry" | "cancel" | "delete", filter: SearchJobsFilter): Promise<number> {
    const query = (
      {
        retry: "retry_jobs_matching",
        cancel: "cancel_jobs_matching",
        delete: "delete_jobs_matching",
      } as const
    )[action];
    const [row] = await this.#run<{ count: number }>(query, [...searchParams(filter), filter.ids ?? null]);
    return row?.count ?? 0;
  }

  /** Running (doing) jobs by worker, at most `limit`. */
  async listRunningJobs(limit = 1000): Promise<RunningJob[]> {
    const rows = await this.#run<{
      id: string;
      worker_id: string | null;
      task_name: string;
      queue_name: string;
      started_at: Date | string | null;
      abort_requested: boolean;
    }>("list_running_jobs", [limit]);
    return rows.map((r) => ({
      id: Number(r.id),
      workerId: r.worker_id === null ? null : Number(r.worker_id),
      task: r.task_name,
      queue: r.queue_name,
      startedAt: r.started_at === null ? null : new Date(r.started_at),
      abortRequested: r.abort_requested,
    }));
  }

  /**
   * Locks of waiting or running jobs: the job holding each (if one runs), how many wait
   * behind it, and how many such locks there are; held locks first, most waiting first,
   * then by name. `after`, the last lock of the previous page, pages through them by keyset.
   */
  async listLockHolders(
    limit = 500,
    after: LocksCursor | null = null,
  ): Promise<{ total: number; locks: LockHolder[] }> {
    const rows = await this.#run<{
      name: string;
      todo: number;
      total: number;
      holder_id: string | null;
      holder_task: string | null;
      holder_worker_id: string | null;
      holder_started_at: Date | string | null;
    }>("list_lock_holders", [limit, after ? !after.held : null, after?.waiting ?? null, after?.name ?? null]);
    return {
      total: rows[0]?.total ?? 0,
      locks: rows.map((r) => ({
        name: r.name,
        waiting: r.todo,
        holder:
          r.holder_id === null
            ? null
            : {
                id: Number(r.holder_id),
                task: r.holder_task!,
                workerId: r.holder_worker_id === null ? null : Number(r.holder_worker_id),
                startedAt: r.holder_started_at === null ? null : new Date(r.holder_started_at),
              },
      })),
    };
  }

  /**
   * The names of the queues with waiting, running or kept jobs, or among the last 1,000
   * finished, paused or limited, sorted, at most `limit` (suggestions: cheap on any table).
   */
  async listQueueNames(limit = 500): Promise<string[]> {
    const rows = await this.#run<{ queue: string }>("list_queue_names", [limit]);
    return rows.map((r) => r.queue);
  }

  /** Per periodic task the database has deferred: its last tick, the job and its status now. */
  async listPeriodicTicks(): Promise<PeriodicTick[]> {
    const rows = await this.#run<{
      task: string;
      periodic_id: string;
      tick: string;
      deferred_at: Date | string;
      job_id: string | null;
      job_status: JobStatus | null;
    }>("list_periodic_ticks", []);
    return rows.map((r) => ({
      task: r.task,
      periodicId: r.periodic_id,
      tick: Number(r.tick),
      deferredAt: new Date(r.deferred_at),
      jobId: r.job_id === null ? null : Number(r.job_id),
      jobStatus: r.job_status,
    }));
  }

  /**
   * A text that changes when jobs are deferred, start, finish or are deleted at the top, and
   * when workers come or go; cheap enough to poll every second (it reads index ends only).
   */
  async activitySignature(): Promise<string> {
    const [row] = await this.#run<{ signature: string | null }>("activity_signature", []);
    return row?.signature ?? "";
  }
}

/** A filter of searchJobs and bulkJobs; every field optional, all given must match. */
export interface SearchJobsFilter {
  queue?: string | null;
  task?: string | null;
  status?: JobStatus | readonly JobStatus[] | null;
  lock?: string | null;
  queueingLock?: string | null;
  /** The worker running the job, or that ran its last attempt. */
  workerId?: number | null;
  /** Created at or after. */
  createdFrom?: Date | null;
  /** Created before. */
  createdBefore?: Date | null;
  /** Text the args' JSON holds, case-insensitive. */
  argsText?: string | null;
  /** A JSON object the args contain (jsonb `@>`). */
  argsContain?: JsonObject | null;
  /** Only ids below this one. */
  beforeId?: number | null;
  /** Only ids from this one. */
  fromId?: number | null;
  /** bulkJobs only: these jobs (the other fields still apply). */
  ids?: readonly number[] | null;
}

function searchParams(f: SearchJobsFilter): unknown[] {
  const statuses = f.status == null ? null : typeof f.status === "string" ? [f.status] : [...f.status];
  return [
    f.queue ?? null,
    f.task ?? null,
    statuses,
    f.lock ?? null,
    f.queueingLock ?? null,
    f.workerId ?? null,
    f.createdFrom ?? null,
    f.createdBefore ?? null,
    f.argsText ?? null,
    f.argsContain ? JSON.stringify(f.argsContain) : null,
    f.beforeId ?? null,
    f.fromId ?? null,
  ];
}

export interface QueueSummary extends QueueGauges {
  failed: number;
  cancelled: number;
  aborted: number;
  /** Jobs that succeeded in the recent window (queueSummary's `recentSeconds`). */
  recentSucceeded: number;
  /** Jobs that failed or aborted in the recent window. */
  recentFailed: number;
  pausedAt: Date | null;
}

export interface ThroughputMinute {
  minute: Date;
  succeeded: number;
  failed: number;
  /** null: no job finished that minute. */
  waitMeanSeconds: number | null;
  waitMaxSeconds: number | null;
}

export interface RunningJob {
  id: number;
  workerId: number | null;
  task: string;
  queue: string;
  startedAt: Date | null;
  abortRequested: boolean;
}

export interface LockHolder {
  name: string;
  /** Todo jobs of the lock. */
  waiting: number;
  /** The doing job holding it, or null when none runs. */
  holder: { id: number; task: string; workerId: number | null; startedAt: Date | null } | null;
}

/** Where a page of listLockHolders ends: its last lock, whether it was held, its waiting jobs. */
export interface LocksCursor {
  name: string;
  held: boolean;
  waiting: number;
}

export interface PeriodicTick {
  task: string;
  periodicId: string;
  /** The last tick deferred, Unix seconds. */
  tick: number;
  deferredAt: Date;
  /** null: deleted since. */
  jobId: number | null;
  jobStatus: JobStatus | null;
}

/** How long waitForJob listens for the outcome of a job it could not find. */
const DONE_GRACE_MS = 250;

/**
 * Runs as two Postgres array literals (ids, run numbers), built as text rather than
 * handed to the driver as arrays, which it would quote and escape element by element:
 * this runs for every job a worker finishes.
 */
function runArrays(runs: readonly RunRef[]): [string, string] {
  let ids = "{";
  let numbers = "{";
  for (let i = 0; i < runs.length; i++) {
    const r = runs[i]!;
    ids += i === 0 ? String(r.id) : `,${r.id}`;
    numbers += i === 0 ? String(r.run) : `,${r.run}`;
  }
  return [`${ids}}`, `${numbers}}`];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function translateQueueingLock(error: unknown, jobs: readonly NewJob[]): unknown {
  if (!isProcError(error, "UNIQUE_VIOLATION")) return error;
  const violation = error as UniqueViolation;
  if (violation.constraint === "jobs_queueing_lock_throttle") {
    // 'queueing lock mail:1 is throttled: a job of it started less than 60000 ms ago'
    const match = /queueing lock (.*) is throttled/s.exec(violation.message);
    return new AlreadyEnqueued(
      match?.[1] ?? jobs.find((j) => j.queueingLock !== null)?.queueingLock ?? null,
      {
        cause: error,
        throttled: true,
      },
    );
  }
  if (violation.constraint !== "jobs_queueing_lock_idx") return error;
  // Postgres says which key: 'Key (queueing_lock)=(mail:1) already exists.'
  const match = /\(queueing_lock\)=\((.*)\) already exists/s.exec(violation.detail ?? "");
  const lock = match?.[1] ?? jobs.find((j) => j.queueingLock !== null)?.queueingLock ?? null;
  return new AlreadyEnqueued(lock, { cause: error });
}

/** The row after the jobs of a claim (fetch_jobs_v4), when there is something to tell. */
interface ClaimInfo {
  held: boolean;
  more: boolean;
  wakeAtMs: number | null;
  limitedQueues: string[] | null;
}

/** Flow options as defer_jobs_v5 takes them: one JSON object per job, or one for all. */
function flowJson(jobs: readonly NewJob[]): string {
  const objects = jobs.map(({ flow }) =>
    JSON.stringify(
      flow
        ? {
            concurrency_key: flow.concurrencyKey,
            concurrency_limit: flow.concurrencyLimit,
            rate_key: flow.rateLimit?.key ?? null,
            rate_max: flow.rateLimit?.max ?? null,
            rate_per_ms: flow.rateLimit?.per ?? null,
            expire_at: flow.expireAt?.toISOString() ?? null,
            unique_for_ms: flow.uniqueForMs,
          }
        : {},
    ),
  );
  return objects.every((o) => o === objects[0]) ? `[${objects[0]}]` : `[${objects.join(",")}]`;
}

function queueLimitProblems(queue: string, limits: QueueLimits): string[] {
  const problems: string[] = [];
  const name = checkName("queue", queue, NAME_LIMITS.queue);
  if (name) problems.push(name);
  if (typeof limits !== "object" || limits === null)
    return [...problems, "limits must be { maxRunning?, rateLimit? }"];
  const { maxRunning, rateLimit } = limits;
  if (
    maxRunning != null &&
    !(Number.isSafeInteger(maxRunning) && maxRunning >= 1 && maxRunning <= 2147483647)
  )
    problems.push(`maxRunning must be a whole number from 1, got ${JSON.stringify(maxRunning)}`);
  if (rateLimit != null) {
    if (!(Number.isSafeInteger(rateLimit.max) && rateLimit.max >= 1 && rateLimit.max <= 1_000_000))
      problems.push(
        `rateLimit.max must be a whole number from 1 to 1000000, got ${JSON.stringify(rateLimit.max)}`,
      );
    if (!(Number.isSafeInteger(rateLimit.per) && rateLimit.per >= 1 && rateLimit.per <= 2147483647))
      problems.push(
        `rateLimit.per must be a whole number of ms from 1 to 2147483647, got ${JSON.stringify(rateLimit.per)}`,
      );
  }
  return problems;
}

interface QueueLimitRow {
  queue: string;
  max_running: number | null;
  rate_max: number | null;
  rate_per_ms: number | null;
  running: number;
  waiting: number;
  window_starts: number | null;
}

interface KeyLimitRow {
  kind: "concurrency" | "rate";
  key: string;
  max: number;
  per_ms: number | null;
  running: number | null;
  waiting: number | null;
  window_starts: number | null;
  open_at: Date | string | null;
}

/** The limits in force and their use now (JobManager.listLimits). */
export interface Limits {
  queues: Array<{
    queue: string;
    maxRunning: number | null;
    rateLimit: { max: number; per: number } | null;
    running: number;
    waiting: number;
    /** Starts in the current rate window; null without a rate limit. */
    windowStarts: number | null;
  }>;
  concurrencyKeys: Array<{ key: string; limit: number; running: number; waiting: number }>;
  rateKeys: Array<{ key: string; max: number; per: number; windowStarts: number; openAt: Date | null }>;
}
