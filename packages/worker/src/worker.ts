import { hostname } from "node:os";
import {
  type App,
  type AppEvents,
  type Job,
  type JobContext,
  type JobManager,
  type JsonValue,
  type Listener,
  type Logger,
  type ReservedConnections,
  type RunRef,
  TaskNotFound,
  TypedEmitter,
  type WorkerEventMap,
  type WorkerService,
  computeRetry,
  isProcError,
  jsonProblem,
  storableText,
} from "@proc/core";
import {
  JobAbortedError,
  JobRecoveredError,
  JobTimeoutError,
  WorkerShutdownError,
  serializeError,
} from "./errors.js";
import { JobAbort } from "./job-abort.js";
import { type ResolvedWorkerOptions, type WorkerOptions, resolveWorkerOptions } from "./options.js";
import { type FinishedRun, type Outcome, OutcomeWriter } from "./outcome-writer.js";
import { ProbeServer, type WorkerHealth, workerHealth } from "./probes.js";
import { expiryService } from "./expiry.js";
import { Wakeup, sleep } from "./wakeup.js";

/** The events of a worker (see WorkerEventMap in @proc/core); each is also emitted on its app. */
export type WorkerEvents = WorkerEventMap<Worker>;

type State = "idle" | "running" | "draining" | "stopping" | "stopped";

interface RunningJob {
  job: Job;
  abort: JobAbort;
  /** The job's scoped logger, made on first use (see #jobLogger). */
  logger: Logger | undefined;
  startedAt: number;
  /** performance.now() at start, for the measured job duration. */
  startedMs: number;
  /** Set once the outcome was handed to the writer (so it is recorded once). */
  recorded: boolean;
  /**
   * Set once this run is known to be no longer the job's current run (recovered
   * elsewhere, or claimed again): its signal aborted, its outcome will be refused.
   */
  lost: boolean;
  /**
   * Set once the slot is free: the task settled, or its outcome was recorded anyway
   * (timeout, stop). See #release and #released.
   */
  released: boolean;
  /** Called on release; set only while someone waits for it (stop). */
  onReleased: (() => void) | undefined;
}

/** What the `ctx` of every job a worker runs shares. */
interface ContextBase {
  app: App;
  workerName: string;
  /** The worker's additionalContext, or null when it has none. */
  additional: Record<string, unknown> | null;
  jobLogger: (running: RunningJob) => Logger;
}

/**
 * A task's `ctx` (JobContext). A class so that the lazy `signal` and `logger` are
 * getters on its prototype: an object literal with getters, spread with the
 * additional context, cost two closures and a copy for every job.
 */
class RunContext {
  readonly job: Job;
  readonly app: App;
  /** The worker that fetched the job (its id changes if it had to register again). */
  readonly workerId: number;
  readonly workerName: string;
  readonly #base: ContextBase;
  readonly #running: RunningJob;

  constructor(base: ContextBase, running: RunningJob) {
    // First, so that the built-in fields below win over additional ones of the same name.
    if (base.additional) Object.assign(this, base.additional);
    this.job = running.job;
    this.app = base.app;
    this.workerId = running.job.workerId!;
    this.workerName = base.workerName;
    this.#base = base;
    this.#running = running;
  }

  /** Fires on abort request, timeout or worker shutdown; `signal.reason` says which. */
  get signal(): AbortSignal {
    return this.#running.abort.signal;
  }

  /** Scoped to this job (jobId, task, attempt); made on first use. */
  get logger(): Logger {
    return this.#base.jobLogger(this.#running);
  }
}

const MAX_BACKOFF_MS = 10_000;
/** setTimeout's ceiling; a timer set for later fires early and is simply re-armed. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Fetches jobs in batches and runs them with bounded concurrency; completes them in
 * coalesced batches; wakes on NOTIFY, on its own timer for the next scheduled job,
 * and on a polling fallback; heartbeats (also while draining); stops gracefully.
 */
export class Worker extends TypedEmitter<WorkerEvents> {
  readonly app: App;
  readonly options: ResolvedWorkerOptions;
  readonly logger: Logger;
  #state: State = "idle";
  readonly #contextBase: ContextBase;
  /**
   * The worker's own bookkeeping (fetch, complete, heartbeat) runs on connections
   * reserved for it, never on the pool that tasks share: tasks holding every pooled
   * connection must not make a live worker look dead (and its jobs run twice).
   */
  #reserved: ReservedConnections | null = null;
  #jm!: JobManager;
  #workerId: number | null = null;
  readonly #running = new Map<number, RunningJob>();
  /** Claimed (doing) but not started yet: prefetched for free slots. */
  #buffer: Job[] = [];
  /** How many jobs to keep in #buffer: what the slots can finish during two fetch round trips. */
  #prefetchTarget = 0;
  /** Smoothed duration of a job run and of a fetch round trip, in ms. */
  #jobMs: number | null = null;
  #fetchMs = 0;
  /** Smoothed size of a claimed job (Claim.bytes per job): bounds #prefetchTarget by prefetchBytes. */
  #jobBytes = 0;
  readonly #wakeup = new Wakeup();
  /** A fetch may find jobs: set by NOTIFY, timers, polls and finished lock jobs. */
  #hint = true;
  /**
   * The last claim held back jobs with a limit (flow control): a slot freeing here, or a
   * limited job ending, may let one start, so either makes the worker look again.
   */
  #flowHeld = false;
  /** Queues with limits, as the last claim said. */
  #limitedQueues: ReadonlySet<string> = new Set();
  #listener: Listener | null = null;
  #scheduledTimer: NodeJS.Timeout | null = null;
  #scheduledAt = Number.POSITIVE_INFINITY;
  readonly #writer: OutcomeWriter;
  /**
   * A heartbeat failed (or a fetch lost its connection): until a beat gets through,
   * no job is started and none fetched. A worker whose connection comes back beats
   * first, so it is heard before the stalled-job checker could judge its silence.
   */
  #beatOwed = false;
  #beating: Promise<boolean> | null = null;
  readonly #beatWakeup = new Wakeup();
  #stopPromise: Promise<void> | null = null;
  #runPromise: Promise<void> | null = null;
  #forceful = false;
  /** A fetch failed: its claim may have committed unseen; check for orphans. */
  #reconcile = false;
  readonly #drainController = new AbortController();
  readonly #servicesController = new AbortController();
  readonly #background: Promise<void>[] = [];
  readonly #signalHandlers: Array<[NodeJS.Signals, () => void]> = [];
  /** The second signal, re-raised once the forced stop has recorded its jobs. */
  #forcedBy: NodeJS.Signals | null = null;
  /** performance.now() when the fetch and heartbeat loops last came round: liveness (probes.ts). */
  #fetchLoopAt = 0;
  #heartbeatLoopAt = 0;
  /** checkSchema passed at start: readiness (probes.ts). */
  #schemaCurrent = false;
  #probes: ProbeServer | null = null;

  constructor(app: App, options: WorkerOptions = {}) {
    super();
    this.app = app;
    this.options = resolveWorkerOptions(options);
    this.logger = (options.logger ?? app.logger).child({ worker: this.options.name });
    this.setEmitterLogger(this.logger);
    const additional = this.options.additionalContext;
    this.#contextBase = {
      app,
      workerName: this.options.name,
      additional: Object.keys(additional).length ? additional : null,
      jobLogger: (running) => this.#jobLogger(running),
    };
    this.#writer = new OutcomeWriter({
      jobManager: () => this.#jm,
      logger: this.logger,
      batchSize: this.options.fetchBatchSize,
      deleteJobs: this.options.deleteJobs,
      onError: (error) => this.emit("worker:error", { worker: this, error, action: "finish" }),
      onBatch: (batch, durationMs) => {
        if (this.hasListeners("worker:outcomes"))
          this.emit("worker:outcomes", { worker: this, count: batch.length, durationMs });
        // Written: a released lock or limit may have unblocked the next job of that lock,
        // key or queue (no NOTIFY tells us), and one-shot must look again before stopping.
        if (!this.options.wait || this.#flowHeld || batch.some((o) => o.job.freesOthers)) this.#hint = true;
        this.#wakeup.wake();
      },
    });
  }

  /** The worker's row id once registered. */
  get id(): number | null {
    return this.#workerId;
  }

  /** The worker's name (option `name`). */
  get name(): string {
    return this.options.name;
  }

  /** Emitted on the worker, then on its app (whose listeners see every worker of the process). */
  override emit<K extends keyof WorkerEvents>(event: K, payload: WorkerEvents[K]): void {
    super.emit(event, payload);
    (this.app as { emit(event: keyof AppEvents, payload: unknown): void }).emit(event, payload);
  }

  override hasListeners(event: keyof WorkerEvents): boolean {
    return super.hasListeners(event) || this.app.hasListeners(event);
  }

  get state(): State {
    return this.#state;
  }

  /** Jobs running now. */
  get runningJobs(): Job[] {
    return [...this.#running.values()].map((r) => r.job);
  }

  /** Where `/livez` and `/readyz` are served (option `probes`) while the worker runs, else null. */
  get probesAddress(): { address: string; family: string; port: number } | null {
    return this.#probes?.address ?? null;
  }

  /** What `/livez` and `/readyz` answer, for a host that serves its own HTTP (see probes.ts). */
  health(): WorkerHealth {
    return workerHealth({
      state: this.#state,
      registered: this.#workerId !== null,
      schemaCurrent: this.#schemaCurrent,
      beatOwed: this.#beatOwed,
      fetchLoopAt: this.#fetchLoopAt,
      heartbeatLoopAt: this.#heartbeatLoopAt,
      pollInterval: this.options.pollInterval,
      heartbeatInterval: this.options.heartbeatInterval,
      fetchBackoffMaxMs: MAX_BACKOFF_MS,
      now: performance.now(),
    });
  }

  /**
   * Run until stopped (stop(), a signal, or one-shot with nothing left). Resolves
   * after a graceful stop; rejects only when the worker cannot start (database
   * unreachable, schema missing).
   */
  run(): Promise<void> {
    this.#runPromise ??= this.#run();
    return this.#runPromise;
  }

  async #run(): Promise<void> {
    if (this.#state !== "idle") throw new Error("a Worker runs once; create a new Worker to run again");
    this.#state = "running";
    try {
      await this.app.open();
    } catch (error) {
      this.#state = "stopped";
      throw error;
    }
    try {
      // Liveness counts from here until the loops first come round.
      this.#fetchLoopAt = this.#heartbeatLoopAt = performance.now();
      if (this.options.probes)
        this.#probes = await ProbeServer.start(this.options.probes, () => this.health(), this.logger);
      // Two connections, so that a fetch and a batch of completions run side by side
      // (measured: +50% drain rate at concurrency 10 over one connection).
      this.#reserved = this.app.connector.reserve(2);
      // On the reserved connections too: the pool stays for tasks and deferrers only.
      await this.app.checkSchema(this.#reserved);
      this.#schemaCurrent = true;
      this.#jm = this.app.jobManager.on(this.#reserved);
      this.#workerId = await this.#register();
    } catch (error) {
      this.#state = "stopped";
      await this.#probes?.close();
      await this.#reserved?.close();
      await this.app.close();
      throw error;
    }
    const { options } = this;
    this.logger.info(
      {
        action: "start_worker",
        workerId: this.#workerId,
        queues: options.queues,
        concurrency: options.concurrency,
      },
      `worker ${options.name} started`,
    );
    this.emit("worker:start", { worker: this, workerId: this.#workerId });
    if (options.handleSignals) this.#installSignalHandlers();
    if (options.listenNotify) await this.#listen();
    this.#background.push(this.#heartbeatLoop());
    if (!options.listenNotify) this.#background.push(this.#abortPollLoop());
    for (const service of [expiryService(options.expiryInterval), ...this.app.workerServices])
      this.#background.push(this.#runService(service));
    try {
      await this.#fetchLoop();
    } finally {
      await this.#shutdown();
    }
  }

  /**
   * Graceful stop: stop fetching, let running jobs finish for up to
   * `shutdownTimeout`, then abort the rest. Idempotent: every call returns the same
   * promise, which resolves once run() has finished.
   */
  stop(): Promise<void> {
    if (this.#state === "idle") {
      this.#state = "stopped";
      return Promise.resolve();
    }
    if (!this.#stopPromise) {
      // /readyz turns 503 here, synchronously; the fetch loop sees this state only after
      // its next await, so readiness always flips before fetching stops.
      if (this.#state === "running") this.#state = "draining";
      this.logger.info(
        { action: "stop_worker", running: this.#running.size },
        "stopping: no new jobs; waiting for running jobs",
      );
      this.#servicesController.abort();
      this.#wakeup.wake();
      this.#stopPromise = (this.#runPromise ?? Promise.resolve()).then(
        () => {},
        () => {},
      );
    }
    return this.#stopPromise;
  }

  /** Abort running jobs now (the second signal), record their outcome, and stop. */
  stopNow(): Promise<void> {
    this.#forceful = true;
    const stopped = this.stop();
    this.#drainController.abort();
    for (const running of this.#running.values())
      running.abort.abort(new WorkerShutdownError("the worker is stopping now (second signal)"));
    return stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  // ---- startup ----------------------------------------------------------------

  #register(): Promise<number> {
    const { name, queues, concurrency } = this.options;
    return this.#jm.registerWorker({
      name,
      host: hostname(),
      pid: process.pid,
      queues,
      concurrency,
    });
  }

  #installSignalHandlers(): void {
    let received = 0;
    const onSignal = (signal: NodeJS.Signals) => () => {
      received++;
      if (received === 1) {
        this.logger.info(
          { action: "signal_graceful", signal },
          `${signal} received: stopping gracefully (send again to abort running jobs)`,
        );
        void this.stop();
      } else {
        this.logger.warn(
          { action: "signal_forceful", signal },
          `${signal} received again: aborting running jobs, then exiting`,
        );
        this.#forcedBy ??= signal;
        void this.stopNow();
      }
    };
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      const handler = onSignal(signal);
      process.on(signal, handler);
      this.#signalHandlers.push([signal, handler]);
    }
  }

  async #listen(): Promise<void> {
    let wasDisconnected = false;
    try {
      this.#listener = await this.app.connector.listen({
        channels: [this.#jm.channel],
        onNotification: ({ payload }) => this.#onNotification(payload),
        onStateChange: (state, error) => {
          if (state === "disconnected") {
            wasDisconnected = true;
            this.logger.warn({ action: "listen_lost", error }, "lost the LISTEN connection; reconnecting");
          } else if (wasDisconnected) {
            wasDisconnected = false;
            this.logger.info({ action: "listen_restored" }, "LISTEN connection restored");
            // The database is back: be heard before anything else (see #beatOwed).
            this.#beatOwed = true;
            this.#beatWakeup.wake();
            // Notifications sent meanwhile are lost: look again.
            this.#hint = true;
            this.#scheduledAt = Number.POSITIVE_INFINITY;
            this.#wakeup.wake();
          }
        },
      });
    } catch (error) {
      // Polling still works; the worker stays useful without LISTEN.
      this.logger.error({ action: "listen_failed", error }, "could not LISTEN; falling back to polling");
      this.#background.push(this.#abortPollLoop());
    }
  }

  #onNotification(payload: string): void {
    let message: { type?: string; queue?: string; at?: string | null; id?: number };
    try {
      message = JSON.parse(payload);
    } catch {
      return;
    }
    if (message.type === "abort" && typeof message.id === "number") {
      this.#abort(message.id);
    } else if (message.type === "pause" && typeof message.queue === "string") {
      // Claims skip a paused queue already; its prefetched jobs must not start either.
      const queue = message.queue;
      void this.#giveBack(
        this.#takeBuffered((job) => job.queue === queue),
        `queue ${queue} was paused`,
      );
    } else if (message.type === "resume" || message.type === "job" || message.type === "limits") {
      const { queues } = this.options;
      if (queues && message.queue && !queues.includes(message.queue)) return;
      if (message.at) {
        this.#armScheduledTimer(new Date(message.at).getTime());
      } else {
        this.#hint = true;
        this.#wakeup.wake();
      }
    }
  }

  // ---- fetch loop ---------------------------------------------------------------

  async #fetchLoop(): Promise<void> {
    const { concurrency, fetchBatchSize, pollInterval, queues } = this.options;
    let backoff = 0;
    let checkScheduled = true;
    while (this.#state === "running") {
      this.#fetchLoopAt = performance.now();
      if (this.#beatOwed && !(await this.#beat())) {
        await this.#wakeup.wait(Math.min(1000, this.options.heartbeatInterval));
        continue;
      }
      this.#startBuffered();
      const claimed = this.#running.size + this.#buffer.length;
      const room = concurrency + this.#prefetchTarget - claimed;
      // Refill the buffer when it is half empty, not after every job: one fetch per
      // finished job would cost a round trip each.
      const lowWater = this.#buffer.length <= this.#prefetchTarget / 2;
      // Backpressure: while the database refuses writes, or outcomes pile up faster
      // than they are written, do not claim more work. (Not "any outcome waiting":
      // outcomes wait while the previous batch is written, and fetching must go on
      // meanwhile, or every slot idles through a write and then a fetch.)
      const backlog = this.#writer.failing || this.#writer.size > concurrency + this.options.prefetch;
      if (room > 0 && lowWater && this.#hint && !backlog) {
        const limit = Math.min(room, fetchBatchSize);
        // Slots free now: the claim takes limited jobs (a concurrency key, a rate limit, a
        // limited queue) only for these and for the adaptive prefetch (#adaptPrefetch: what
        // the slots finish within two round trips, none for slow jobs), so that a limited
        // job is never held for long without running while another worker could run it.
        const slots = concurrency - this.#running.size - this.#buffer.length;
        let jobs: Job[];
        try {
          this.#hint = false;
          const sent = performance.now();
          const claim = await this.#jm.claimJobs(
            this.#workerId!,
            queues,
            limit,
            Math.max(0, slots + this.#prefetchTarget),
          );
          jobs = claim.jobs;
          if (jobs.length) {
            const bytes = claim.bytes / jobs.length;
            this.#jobBytes = this.#jobBytes ? this.#jobBytes * 0.8 + bytes * 0.2 : bytes;
          }
          this.#adaptPrefetch(performance.now() - sent);
          this.#flowHeld = claim.held;
          // Limited jobs were held back for want of idle slots, and slots freed during the
          // round trip (their releases came before this flag): look again now. Not when the
          // claim had every slot idle: what it held waits for a limit, not for this worker.
          if (claim.held && slots < concurrency && this.#running.size + this.#buffer.length < concurrency)
            this.#hint = true;
          if (claim.limitedQueues.length || this.#limitedQueues.size)
            this.#limitedQueues = new Set(claim.limitedQueues);
          if (claim.more) this.#hint = true; // expired jobs were skipped: look again
          if (claim.wakeAt) this.#armScheduledTimer(claim.wakeAt.getTime());
          for (const job of jobs) {
            // Claimed again while an earlier run of it still settles here: that run
            // is over (it waits in the buffer until that run is gone, see #startBuffered).
            const earlier = this.#running.get(job.id);
            if (earlier) this.#loseRun(earlier, "claimed again");
            this.#buffer.push(job);
          }
          this.#startBuffered();
          if (this.#reconcile) await this.#releaseOrphans();
          if (checkScheduled) {
            checkScheduled = false;
            const next = await this.#jm.nextScheduledAt(queues);
            if (next) this.#armScheduledTimer(next.getTime());
          }
          backoff = 0;
        } catch (error) {
          this.#hint = true;
          if (isProcError(error, "CONNECTION_ERROR")) {
            this.#reconcile = true;
            this.#beatOwed = true;
          }
          backoff = Math.min(backoff ? backoff * 2 : 200, MAX_BACKOFF_MS);
          this.logger.error(
            { action: "fetch_error", error, retryInMs: backoff },
            "could not fetch jobs; retrying",
          );
          this.emit("worker:error", { worker: this, error, action: "fetch" });
          await this.#wakeup.wait(backoff);
          continue;
        }
        if (jobs.length) this.emit("worker:fetch", { worker: this, count: jobs.length });
        if (jobs.length === limit) {
          this.#hint = true; // a full batch: more may be waiting
          continue;
        }
        if (!this.options.wait && jobs.length === 0 && !this.#hint && this.#idle()) {
          this.logger.info({ action: "one_shot_done" }, "no job is ready: stopping (one-shot)");
          void this.stop();
          break;
        }
        if (jobs.length > 0) continue;
      }
      const woken = await this.#wakeup.wait(pollInterval);
      if (!woken) {
        // Poll: a fallback for lost or disabled NOTIFY, and for clock drift.
        this.#hint = true;
        checkScheduled = true;
      }
    }
  }

  /**
   * Size the buffer to what the slots can finish during two fetch round trips, from
   * how long jobs take (not from how many finished: that is capped by the buffer
   * itself and would keep it small). Short jobs get a deep buffer, so no slot waits
   * for the database; slow jobs none, so they are not hoarded away from other workers.
   * Until a job has finished, nothing is prefetched. Large jobs are prefetched only as
   * many as fit in prefetchBytes, so that a deep buffer of big args does not hold memory
   * the slots will not need for a while (measured in the bench's memory scenario: 2,000
   * prefetched jobs of 10 KB args held 21.6 MB).
   */
  #adaptPrefetch(roundTripMs: number): void {
    this.#fetchMs = this.#fetchMs ? this.#fetchMs * 0.8 + roundTripMs * 0.2 : roundTripMs;
    if (this.#jobMs === null) return;
    const { concurrency, prefetch, prefetchBytes } = this.options;
    const perSlot = (2 * this.#fetchMs) / Math.max(this.#jobMs, 0.01);
    const fit = this.#jobBytes > 0 ? Math.floor(prefetchBytes / this.#jobBytes) : prefetch;
    this.#prefetchTarget = Math.min(prefetch, fit, Math.floor(concurrency * perSlot));
  }

  #recordJobDuration(ms: number): void {
    this.#jobMs = this.#jobMs === null ? ms : this.#jobMs * 0.9 + ms * 0.1;
  }

  /**
   * Move buffered jobs into free slots. A job whose earlier run still settles here
   * waits: a worker never runs two runs of one job at once. Nothing starts while a
   * heartbeat is owed.
   */
  #startBuffered(): void {
    if (this.#state !== "running" || this.#beatOwed) return;
    const { concurrency } = this.options;
    for (let i = 0; i < this.#buffer.length && this.#running.size < concurrency; ) {
      if (this.#running.has(this.#buffer[i]!.id)) i++;
      // shift() for the head, the usual case: V8 moves the array's start instead of
      // copying the rest of a deep buffer for every job started.
      else this.#start(i === 0 ? this.#buffer.shift()! : this.#buffer.splice(i, 1)[0]!);
    }
  }

  /** Give back jobs claimed but never started (on stop): attempts restored, not a stall. */
  #releaseBuffer(): Promise<void> {
    return this.#giveBack(this.#buffer.splice(0), "the worker stops");
  }

  /** Remove and return the buffered (prefetched, not started) jobs that match. */
  #takeBuffered(match: (job: Job) => boolean): Job[] {
    const taken = this.#buffer.filter(match);
    if (taken.length) this.#buffer = this.#buffer.filter((job) => !match(job));
    return taken;
  }

  /** Give back prefetched jobs (back to todo, attempts restored, fenced by their run). */
  async #giveBack(jobs: Job[], why: string): Promise<void> {
    if (!jobs.length) return;
    try {
      await this.#jm.releaseJobs(jobs);
      this.logger.debug(
        { action: "release_prefetched_jobs", count: jobs.length, why },
        `gave back ${jobs.length} prefetched jobs: ${why}`,
      );
    } catch (error) {
      // They stay doing on this worker, whose row is about to go: stalled recovery
      // will put them back.
      this.logger.warn({ action: "release_error", error }, "could not give back prefetched jobs");
    }
  }

  /**
   * After a lost connection, a fetch may have committed its claim without the rows
   * ever reaching us: those jobs would stay doing on a live, heartbeating worker and
   * never be recovered. Give back every job the database says we run but we do not.
   */
  async #releaseOrphans(): Promise<void> {
    const key = (r: RunRef) => `${r.id}:${r.run}`;
    const known = new Set([...this.#running.values()].map((r) => key(r.job)).concat(this.#buffer.map(key)));
    const orphans = (await this.#jm.workerDoingJobs(this.#workerId!)).filter(
      (r) => !known.has(key(r)) && !this.#writer.has(r.id),
    );
    if (orphans.length) {
      const released = await this.#jm.releaseJobs(orphans);
      this.logger.warn(
        { action: "release_orphaned_jobs", jobIds: released },
        `gave back ${released.length} job(s) claimed by a lost fetch`,
      );
    }
    this.#reconcile = false;
  }

  /** Nothing running and every outcome written (so no lock is still held by us). */
  #idle(): boolean {
    return this.#running.size === 0 && this.#buffer.length === 0 && this.#writer.idle;
  }

  #armScheduledTimer(at: number): void {
    if (!(at < this.#scheduledAt)) return;
    this.#scheduledAt = at;
    if (this.#scheduledTimer) clearTimeout(this.#scheduledTimer);
    const delay = Math.min(Math.max(at - Date.now(), 0), MAX_TIMER_MS);
    this.#scheduledTimer = setTimeout(() => {
      this.#scheduledTimer = null;
      this.#scheduledAt = Number.POSITIVE_INFINITY;
      this.#hint = true;
      this.#wakeup.wake();
    }, delay);
    this.#scheduledTimer.unref();
  }

  // ---- running jobs -------------------------------------------------------------

  #start(job: Job): void {
    const running: RunningJob = {
      job,
      abort: new JobAbort(),
      logger: undefined,
      startedAt: Date.now(),
      startedMs: performance.now(),
      recorded: false,
      lost: false,
      released: false,
      onReleased: undefined,
    };
    this.#running.set(job.id, running);
    void this.#execute(running).finally(() => this.#release(running));
  }

  /**
   * Free the job's slot (once): when its task settles, or earlier when its outcome is
   * recorded without waiting for it (timeout, stop). A plain call rather than a promise
   * per job: at tens of thousands of jobs a second, per-job promises and closures are
   * a large part of the worker's garbage.
   */
  #release(running: RunningJob): void {
    if (running.released) return;
    running.released = true;
    this.#running.delete(running.job.id);
    this.#recordJobDuration(performance.now() - running.startedMs);
    running.onReleased?.();
    this.#startBuffered(); // no round trip between a finished job and the next
    if (this.#flowHeld) this.#hint = true; // a held limited job may take this slot
    this.#wakeup.wake();
  }

  /** What the outcome writer keeps of a run: its fence, and whether its end may let a waiting job start. */
  #finishedRun(job: Job): FinishedRun {
    return { id: job.id, run: job.run, freesOthers: job.lock !== null || this.#limited(job) };
  }

  /** A job with a limit (its concurrency key, its rate limit, or its queue's limits). */
  #limited(job: Job): boolean {
    return job.concurrencyKey !== null || job.rateLimit !== null || this.#limitedQueues.has(job.queue);
  }

  /** Resolves once every job running now has been released. */
  #released(): Promise<unknown> {
    return Promise.all(
      [...this.#running.values()].map(
        (running) =>
          new Promise<void>((resolve) => {
            if (running.released) return resolve();
            const previous = running.onReleased;
            running.onReleased = () => {
              previous?.();
              resolve();
            };
          }),
      ),
    );
  }

  async #execute(running: RunningJob): Promise<void> {
    const { job, abort } = running;
    if (this.hasListeners("job:start")) this.emit("job:start", { worker: this, job });
    if (this.#logs("debug"))
      this.#logJob(running, "debug", { action: "start_job", queue: job.queue }, `job ${job.id} started`);
    const task = this.app.getTask(job.task);
    if (!task) {
      const error = new TaskNotFound(job.task, [...this.app.tasks.keys()]);
      this.#jobLogger(running).error(
        { action: "task_not_found", error },
        `job ${job.id}: unknown task ${job.task}; failing it without retry`,
      );
      this.#record(running, { kind: "failure", job, status: "failed", error: serializeError(error) }, error);
      return;
    }
    let args: unknown = job.args;
    if (task.options.schema) {
      // Only with a schema: a promise per job is not free.
      const parsed = await task
        .parseArgs(job.args)
        .catch((error: unknown) => ({ ok: false as const, issues: [String(error)] }));
      if (!parsed.ok) {
        const error = new Error(
          `args of job ${job.id} do not match the schema of task ${job.task}: ${parsed.issues.join("; ")}`,
        );
        error.name = "InvalidArgs";
        this.#jobLogger(running).error(
          { action: "invalid_args", issues: parsed.issues },
          `${error.message}; failing it without retry`,
        );
        this.#record(
          running,
          { kind: "failure", job, status: "failed", error: serializeError(error) },
          error,
        );
        return;
      }
      args = parsed.value;
    }
    let timer: NodeJS.Timeout | undefined;
    if (task.options.timeout !== undefined) {
      const ms = task.options.timeout;
      timer = setTimeout(() => {
        const error = new JobTimeoutError(ms);
        abort.abort(error);
        // Record the failure now: a task that ignores its signal must not hold the
        // job (or the slot) forever. Whatever it does later is ignored.
        this.#onFailure(running, error);
      }, ms);
    }
    if (job.abortRequested) abort.abort(new JobAbortedError());
    const ctx = new RunContext(this.#contextBase, running) as unknown as JobContext<never>;
    // The app's middleware outermost (plugins: tracing), then the worker's, then the
    // task's, then the task itself.
    const taskMiddleware = task.options.middleware ?? [];
    const appMiddleware = this.app.middleware;
    try {
      // Awaited inside the try: a handler that throws synchronously is caught like a rejection.
      const value =
        appMiddleware.length === 0 && this.options.middleware.length === 0 && taskMiddleware.length === 0
          ? await task.handler(args as never, ctx)
          : await [...appMiddleware, ...this.options.middleware, ...taskMiddleware].reduceRight<
              () => Promise<unknown>
            >(
              (next, middleware) => () => middleware(ctx as JobContext<unknown>, next),
              async () => task.handler(args as never, ctx),
            )();
      if (running.recorded) return; // already recorded as aborted by a forceful stop
      const result = toJsonResult(value);
      if (result.ok) {
        this.#record(running, { kind: "success", job, result: result.value });
        if (this.#logs("info"))
          this.#logJob(
            running,
            "info",
            { action: "job_success", durationMs: Date.now() - running.startedAt },
            `job ${job.id} succeeded`,
          );
      } else {
        this.#onFailure(running, result.error);
      }
    } catch (error) {
      if (!running.recorded) this.#onFailure(running, error);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The job's logger (the worker's, bound to jobId, task and attempt), made on first
   * use: a child logger per job costs more than a short job, and most jobs only log
   * through #logJob.
   */
  #jobLogger(running: RunningJob): Logger {
    const { job } = running;
    running.logger ??= this.logger.child({
      jobId: job.id,
      task: job.task,
      attempt: job.attempts,
      ...this.app.logBindingsFor(job),
    });
    return running.logger;
  }

  /**
   * Whether the logger writes `level` (true when it cannot say): per-job lines are not
   * even built when it does not.
   */
  #logs(level: "debug" | "info"): boolean {
    return this.logger.isLevelEnabled?.(level) !== false;
  }

  /** One line about a job, with the same fields as its logger, without making one. */
  #logJob(running: RunningJob, level: "debug" | "info", obj: Record<string, unknown>, message: string): void {
    if (running.logger) {
      running.logger[level](obj, message);
      return;
    }
    const { job } = running;
    this.logger[level](
      { jobId: job.id, task: job.task, attempt: job.attempts, ...this.app.logBindingsFor(job), ...obj },
      message,
    );
  }

  /** Decide between retry, aborted and failed for a run that threw. */
  #onFailure(running: RunningJob, error: unknown): void {
    const { job, abort } = running;
    const logger = this.#jobLogger(running);
    const reason = abort.aborted ? abort.reason : undefined;
    const task = this.app.getTask(job.task);
    const serialized = serializeError(error);
    if (reason instanceof JobAbortedError) {
      logger.info({ action: "job_aborted" }, `job ${job.id} aborted on request`);
      this.#record(running, { kind: "failure", job, status: "aborted", error: serialized }, error);
      return;
    }
    if (running.lost) {
      // Refused by the database (the job is no longer doing this run); written anyway
      // so that the refusal is logged (stale_outcome) where it is decided.
      this.#record(running, { kind: "failure", job, status: "aborted", error: serialized }, error);
      return;
    }
    let retry: ReturnType<typeof computeRetry> = null;
    try {
      retry = computeRetry(task?.options.retry, { error, job });
    } catch (decisionError) {
      // A retry function that throws or returns a decision the database would refuse
      // must not stop the worker: the job fails, and its error says why it was not retried.
      const why = storableText(
        decisionError instanceof Error ? decisionError.message : String(decisionError),
      );
      serialized.retryDecisionError = why;
      logger.error(
        { action: "retry_decision_error", error: decisionError },
        `the task's retry function threw or returned an invalid decision; not retrying: ${why}`,
      );
    }
    if (retry) {
      logger.warn(
        { action: "job_error_retry", error, retryAt: retry.at },
        `job ${job.id} failed; retrying at ${retry.at.toISOString()}`,
      );
      this.emit("job:retry", {
        worker: this,
        job,
        error,
        retryAt: retry.at,
        durationMs: Date.now() - running.startedAt,
      });
      this.#record(running, { kind: "failure", job, status: "todo", error: serialized, retry }, error);
      return;
    }
    // Stopped by the worker's shutdown and not retryable: aborted, not failed.
    const status = reason instanceof WorkerShutdownError ? "aborted" : "failed";
    logger.error(
      { action: status === "aborted" ? "job_aborted" : "job_error", error },
      `job ${job.id} ${status}`,
    );
    this.#record(running, { kind: "failure", job, status, error: serialized }, error);
  }

  #record(running: RunningJob, outcome: Outcome<Job>, error?: unknown): void {
    if (running.recorded) return;
    running.recorded = true;
    const durationMs = Date.now() - running.startedAt;
    if (outcome.kind === "success") {
      if (this.hasListeners("job:success"))
        this.emit("job:success", { worker: this, job: running.job, result: outcome.result, durationMs });
    } else if (outcome.status !== "todo") {
      this.emit("job:error", { worker: this, job: running.job, error, durationMs, status: outcome.status });
    }
    this.#writer.push({ ...outcome, job: this.#finishedRun(outcome.job) });
    this.#release(running);
  }

  #abort(jobId: number): void {
    const index = this.#buffer.findIndex((j) => j.id === jobId);
    if (index >= 0) {
      // Prefetched, not started: it ends aborted without running.
      const [job] = this.#buffer.splice(index, 1);
      const error = new JobAbortedError("the job was asked to abort before it started");
      this.emit("job:error", { worker: this, job: job!, error, durationMs: 0, status: "aborted" });
      this.#writer.push({
        kind: "failure",
        job: this.#finishedRun(job!),
        status: "aborted",
        error: serializeError(error),
      });
      return;
    }
    const running = this.#running.get(jobId);
    if (!running || running.lost || running.abort.aborted) return;
    this.logger.info({ action: "abort_job", jobId }, `job ${jobId}: abort requested`);
    this.emit("job:abort", { worker: this, job: running.job, reason: "abort_requested" });
    running.abort.abort(new JobAbortedError());
  }

  /**
   * This run is no longer the job's current run (recovered elsewhere, or claimed
   * again): abort its signal with a reason that says so. Its outcome, if it still
   * produces one, is refused by the database and logged as stale_outcome.
   */
  #loseRun(running: RunningJob, how: "recovered" | "claimed again"): void {
    if (running.lost) return;
    running.lost = true;
    const { job } = running;
    this.logger.warn(
      { action: "run_lost", jobId: job.id, run: job.run, how },
      `job ${job.id}: run ${job.run} is no longer the job's current run (${how}); aborting it`,
    );
    this.emit("job:abort", { worker: this, job, reason: "recovered" });
    running.abort.abort(new JobRecoveredError(job.id, job.run));
  }

  // ---- heartbeat, abort polling, services -------------------------------------------

  async #heartbeatLoop(): Promise<void> {
    const { heartbeatInterval } = this.options;
    // Beats until the worker has fully stopped, including while draining (a
    // draining worker whose heartbeat stopped would have its jobs taken as stalled).
    // After a failed beat, tries again every second: the first beat after the
    // database comes back is the one that matters (see #beatOwed).
    while (!this.#finalStop()) {
      this.#heartbeatLoopAt = performance.now();
      await this.#beatWakeup.wait(this.#beatOwed ? Math.min(1000, heartbeatInterval) : heartbeatInterval);
      if (this.#finalStop()) break;
      await this.#beat();
    }
  }

  /** One heartbeat (shared by concurrent callers); true when it got through. */
  #beat(): Promise<boolean> {
    this.#beating ??= this.#sendBeat().finally(() => {
      this.#beating = null;
    });
    return this.#beating;
  }

  async #sendBeat(): Promise<boolean> {
    // The runs this worker holds, each id once: a run that is already lost is not
    // vouched for, and a new claim of its job waits in the buffer (see #startBuffered).
    const held = new Map<number, number>();
    for (const r of this.#running.values()) if (!r.lost) held.set(r.job.id, r.job.run);
    for (const j of this.#buffer) if (!this.#running.has(j.id)) held.set(j.id, j.run);
    try {
      const beat = await this.#jm.heartbeatWorker(
        this.#workerId!,
        [...held].map(([id, run]) => ({ id, run })),
        // No worker at all beat for this long: the database was unreachable to every
        // one of them (twice the interval, plus the one second heartbeat_worker_v2
        // may leave between two writes of the liveness row).
        (2 * this.options.heartbeatInterval + 1000) / 1000,
      );
      if (!beat.workerFound) {
        // Pruned as dead (e.g. after a long partition): register again. Its jobs
        // were recovered meanwhile; the beat below said which runs are lost.
        this.#workerId = await this.#register();
        this.logger.warn(
          { action: "worker_reregistered", workerId: this.#workerId },
          "worker row was pruned; registered again",
        );
      }
      for (const id of beat.abortJobIds) this.#abort(id);
      for (const id of beat.lostJobIds) this.#onLost(id, held.get(id)!);
      if (this.#beatOwed) {
        this.#beatOwed = false;
        this.logger.info({ action: "heartbeat_restored" }, "heartbeat restored: resuming work");
        this.emit("worker:reconnect", { worker: this });
        this.#startBuffered();
        this.#wakeup.wake();
      }
      return true;
    } catch (error) {
      if (!this.#beatOwed)
        this.logger.warn(
          { action: "heartbeat_error", error },
          "heartbeat failed; starting no job until one gets through",
        );
      this.#beatOwed = true;
      this.emit("worker:error", { worker: this, error, action: "heartbeat" });
      return false;
    }
  }

  /** The heartbeat says run `run` of job `id` is lost: drop it from the buffer, or abort it. */
  #onLost(id: number, run: number): void {
    const running = this.#running.get(id);
    if (running?.job.run === run) {
      this.#loseRun(running, "recovered");
      return;
    }
    const index = this.#buffer.findIndex((j) => j.id === id && j.run === run);
    if (index < 0) return; // finished meanwhile
    this.#buffer.splice(index, 1);
    this.logger.warn(
      { action: "run_lost", jobId: id, run, how: "recovered" },
      `job ${id}: prefetched run ${run} was recovered elsewhere before it started; dropped`,
    );
  }

  async #abortPollLoop(): Promise<void> {
    while (this.#state === "running" || this.#state === "draining") {
      await this.#wakeupOrStop(this.options.abortPollInterval);
      const ids = [...this.#running.keys(), ...this.#buffer.map((j) => j.id)];
      if (!ids.length) continue;
      try {
        for (const id of await this.#jm.abortRequestedJobs(ids)) this.#abort(id);
      } catch (error) {
        this.logger.warn({ action: "abort_poll_error", error }, "could not poll for abort requests");
      }
    }
  }

  #finalStop(): boolean {
    return this.#state === "stopping" || this.#state === "stopped";
  }

  readonly #stopWaiters = new Set<() => void>();
  /** Sleep, cut short when the worker reaches its final stop. */
  #wakeupOrStop(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#stopWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#stopWaiters.add(done);
    });
  }

  async #runService(service: WorkerService): Promise<void> {
    const signal = this.#servicesController.signal;
    const logger = this.logger.child({ service: service.name });
    let backoff = 0;
    while (!signal.aborted) {
      try {
        await service.run({
          app: this.app,
          signal,
          logger,
          workerId: this.#workerId!,
          workerName: this.options.name,
          queues: this.options.queues,
        });
        if (!signal.aborted) backoff = 1000; // returned early: do not spin
      } catch (error) {
        if (signal.aborted) break;
        backoff = Math.min(backoff ? backoff * 2 : 1000, 30_000);
        logger.error(
          { action: "service_error", error, retryInMs: backoff },
          `worker service ${service.name} failed; restarting`,
        );
      }
      if (!signal.aborted && backoff) await sleep(backoff, signal);
    }
  }

  // ---- shutdown -----------------------------------------------------------------------

  async #shutdown(): Promise<void> {
    if (this.#state === "running") this.#state = "draining";
    this.#servicesController.abort();
    if (this.#scheduledTimer) clearTimeout(this.#scheduledTimer);
    await this.#releaseBuffer();
    const { shutdownTimeout } = this.options;
    if (this.#running.size && !this.#forceful) {
      const drainStarted = Date.now();
      const timedOut = await raceTimeout(this.#released(), shutdownTimeout, this.#drainController.signal);
      if (timedOut && this.#running.size && this.#forceful) {
        // stopNow() (the second signal) cut the drain short and aborted the jobs itself.
        this.logger.warn(
          { action: "shutdown_forced", running: this.#running.size, afterMs: Date.now() - drainStarted },
          `stopped waiting after ${Date.now() - drainStarted} ms: aborting ${this.#running.size} running job(s)`,
        );
      } else if (timedOut && this.#running.size) {
        this.logger.warn(
          { action: "shutdown_timeout", running: this.#running.size, shutdownTimeout },
          `${this.#running.size} job(s) still running after ${shutdownTimeout} ms: aborting them`,
        );
        for (const running of this.#running.values())
          running.abort.abort(
            new WorkerShutdownError(`the worker is stopping (shutdownTimeout of ${shutdownTimeout} ms)`),
          );
      }
    }
    if (this.#running.size) {
      // Give aborted tasks a moment to settle on their own, then record whatever is
      // left as aborted (or retried) without waiting any longer: a task that ignores
      // its signal must not hang the deploy.
      await raceTimeout(this.#released(), this.#forceful ? 500 : 2000);
      for (const running of this.#running.values()) {
        if (running.recorded) continue;
        const error = new WorkerShutdownError("the worker stopped before the job settled");
        this.#onFailure(running, error);
      }
    }
    this.#state = "stopping";
    for (const wake of this.#stopWaiters) wake();
    this.#beatWakeup.wake();
    // Write every outcome before saying goodbye; bounded so a dead database cannot
    // hang the process (unwritten jobs stay doing and are recovered as stalled), and
    // then the writer stops for good: nothing retries against a closed pool.
    if (!(await this.#writer.drain(10_000)))
      this.logger.error(
        { action: "finish_timeout", pending: this.#writer.size },
        "could not record every outcome before stopping",
      );
    this.#writer.close();
    // Services and loops end on their own once stopping; a misbehaving service must
    // not hang the stop.
    await raceTimeout(Promise.allSettled(this.#background), 5000);
    await this.#listener?.close().catch(() => {});
    if (this.#workerId !== null) {
      await this.#jm.unregisterWorker(this.#workerId).catch((error) => {
        this.logger.warn(
          { action: "unregister_error", error },
          "could not remove the worker row (it will be pruned)",
        );
      });
    }
    await this.#reserved?.close();
    await this.#probes?.close();
    for (const [signal, handler] of this.#signalHandlers) process.off(signal, handler);
    this.#signalHandlers.length = 0;
    this.#state = "stopped";
    this.logger.info({ action: "stopped_worker" }, `worker ${this.options.name} stopped`);
    this.emit("worker:stop", { worker: this, workerId: this.#workerId });
    await this.app.close();
    if (this.#forcedBy) {
      // The second signal means "exit now" (DESIGN §4): our handlers are gone, so the
      // signal now does what it would have done without us (graphile-worker does the
      // same); a handler of the host application still sees it.
      process.kill(process.pid, this.#forcedBy);
    }
  }
}

/** Resolves true if `ms` passed (or `signal` aborted) before `promise` settled. */
async function raceTimeout(promise: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<boolean> {
  if (!Number.isFinite(ms)) {
    if (!signal) {
      await promise;
      return false;
    }
  }
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    if (Number.isFinite(ms)) timer = setTimeout(() => resolve(true), ms);
    if (signal) {
      onAbort = () => resolve(true);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([promise.then(() => false), timeout]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

const NO_RESULT = { ok: true, value: null } as const;

function toJsonResult(value: unknown): { ok: true; value: JsonValue | null } | { ok: false; error: Error } {
  if (value === undefined) return NO_RESULT;
  // Checked here, not left to the database: one bad result must not fail the
  // whole batch of completions it would be written with.
  const problem = jsonProblem(value, "result");
  if (!problem) return { ok: true, value: value as JsonValue };
  const error = new Error(`the task's return value cannot be stored as JSON: ${problem}`);
  error.name = "InvalidResult";
  return { ok: false, error };
}
