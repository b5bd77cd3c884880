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
    // plugin that sets them): nothing to send, and nothing stored.
    let anyHeaders = false;
    for (let i = 0; i < n; i++) {
      const job = jobs[i]!;
      args[i] = job.args;
      anyHeaders ||= job.headers != null;
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
        onConflict === "error" ? "defer_jobs" : "defer_jobs_on_conflict",
        [
          column(same.queue, (j) => j.queue),
          column(same.task, (j) => j.task),
          column(same.priority, (j) => j.priority),
          column(same.lock, (j) => j.lock),
          column(same.queueingLock, (j) => j.queueingLock),
          argsJson,
          column(same.scheduledAt, (j) => j.scheduledAt?.toISOString() ?? null),
          anyHeaders ? JSON.stringify(jobs.map((j) => j.headers ?? null)) : null,
          ...(onConflict === "error" ? [] : [onConflict]),
        ],
        q,
      );
      return row?.ids ? row.ids.split(",").map(Number) : [];
    } catch (error) {
      throw translateQueueingLock(error, jobs);
    }
  }

  // ---- worker operations ----------------------------------------------------

  /** Claim up to `limit` ready jobs for a worker in one round trip. */
  async fetchJobs(workerId: number, queues: readonly string[] | null, limit: number): Promise<Job[]> {
    const fetch = async () => {
      const [row] = await this.#run<{ jobs: FetchedJobRow[] | null }>("fetch_jobs", [
        workerId,
        queues,
        limit,
      ]);
      return (row?.jobs ?? []).map((job) => fetchedJobFromRow(job, workerId));
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
  if (violation.constraint !== "jobs_queueing_lock_idx") return error;
  // Postgres says which key: 'Key (queueing_lock)=(mail:1) already exists.'
  const match = /\(queueing_lock\)=\((.*)\) already exists/s.exec(violation.detail ?? "");
  const lock = match?.[1] ?? jobs.find((j) => j.queueingLock !== null)?.queueingLock ?? null;
  return new AlreadyEnqueued(lock, { cause: error });
}
