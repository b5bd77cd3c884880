import {
  type JobError,
  type JobManager,
  type JsonValue,
  type Logger,
  type RunRef,
  isProcError,
  isTransientError,
  storableText,
} from "@proc/core";
import { serializeError } from "./errors.js";
import { sleep } from "./wakeup.js";

/**
 * What the writer keeps of a finished run's job: not the Job itself, whose args would
 * stay in memory until the outcome is written (outcomes queue up while a write is slow).
 */
export interface FinishedRun extends RunRef {
  /** The run's end may let another job start (its lock or a limit): look again once written. */
  freesOthers: boolean;
}

/** The outcome of one run, waiting to be written. Successes are written in batches. */
export type Outcome<J extends RunRef = FinishedRun> =
  | { kind: "success"; job: J; result: JsonValue | null }
  | {
      kind: "failure";
      job: J;
      status: "failed" | "aborted" | "todo";
      error: JobError;
      retry?: { at: Date; queue?: string; priority?: number; lock?: string };
      /** Set on the stand-in written when the database refused the original outcome. */
      rejected?: true;
    };

export interface OutcomeWriterOptions {
  /** The job manager on the worker's reserved connections. */
  jobManager: () => JobManager;
  logger: Logger;
  /** Most outcomes written per call (the worker's fetchBatchSize). */
  batchSize: number;
  deleteJobs: "never" | "successful" | "always";
  /** A write failed (for the worker's error event). */
  onError: (error: unknown) => void;
  /** A batch was dealt with (written, refused as stale, or given up): its locks are free. */
  /** A batch was written (or given up on), `durationMs` after its write began. */
  onBatch: (batch: readonly Outcome[], durationMs: number) => void;
}

const MAX_BACKOFF_MS = 10_000;

/**
 * Writes the outcomes of runs: successes in batches, failures one by one, always
 * fenced by run (a run whose job was recovered or claimed again is refused by the
 * database and logged as `stale_outcome`).
 *
 * Only a transient error (the connection, a lock wait that timed out: see
 * isTransientError) is retried, with backoff, and only for the outcomes it concerns:
 * one locked row must not hold up the others. An outcome the database refuses for
 * what it holds (a data error) is replaced by a failure that says so, with a plain
 * text error, so that the job ends `failed` instead of wedging the writer; nothing a
 * task returns or throws can stop the worker.
 */
export class OutcomeWriter {
  readonly #options: OutcomeWriterOptions;
  readonly #pending: Outcome[] = [];
  /** Jobs whose outcome is known but not written yet (pending or being written). */
  readonly #unwritten = new Set<number>();
  #flushing: Promise<void> | null = null;
  /** The last attempt to write failed (cleared by the next one that succeeds). */
  #failing = false;
  /** Set by close(): stop retrying (the worker gave up waiting at its stop). */
  #closed = false;
  readonly #closer = new AbortController();
  /** The last transient error of the current write, for the log line that reports it. */
  #transient: unknown = null;

  constructor(options: OutcomeWriterOptions) {
    this.#options = options;
  }

  /** Outcomes waiting to be written. */
  get size(): number {
    return this.#pending.length;
  }

  /** Whether the last write failed, so that the worker stops claiming more work. */
  get failing(): boolean {
    return this.#failing;
  }

  /** Nothing pending and nothing being written. */
  get idle(): boolean {
    return this.#pending.length === 0 && this.#flushing === null;
  }

  /** Whether the outcome of job `id` is known but not written yet. */
  has(id: number): boolean {
    return this.#unwritten.has(id);
  }

  push(outcome: Outcome): void {
    this.#unwritten.add(outcome.job.id);
    this.#pending.push(outcome);
    this.#kick();
  }

  /** Start a flush unless one runs (it picks new outcomes up when it loops). */
  #kick(): void {
    if (this.#flushing || this.#closed || this.#pending.length === 0) return;
    this.#flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush());
  }

  /** Resolves true once everything pushed so far is written, false after `timeoutMs` or close(). */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.#kick();
      if (!this.#flushing) return this.#pending.length === 0;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.#flushing!.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) return false;
    }
  }

  /** Stop writing: a flush in progress ends after its current statement, retries stop. */
  close(): void {
    this.#closed = true;
    this.#closer.abort();
  }

  /**
   * Write pending outcomes until none is left: at most batchSize per round (a bigger
   * update holds its rows and index pages longer against the concurrent fetch, and
   * measured slower per job: 500 ran a 20,000-job drain at 28,000 jobs/s where
   * unbounded batches of ~1,000 ran it at 25,000).
   */
  async #flush(): Promise<void> {
    let backoff = 0;
    try {
      while (this.#pending.length && !this.#closed) {
        const batch = this.#pending.splice(0, this.#options.batchSize);
        const began = performance.now();
        const later = await this.#write(batch);
        this.#options.onBatch(batch, performance.now() - began);
        if (later.length === 0) {
          backoff = 0;
          this.#failing = false;
          continue;
        }
        this.#pending.unshift(...later);
        this.#failing = true;
        backoff = Math.min(backoff ? backoff * 2 : 200, MAX_BACKOFF_MS);
        await sleep(backoff, this.#closer.signal);
      }
    } finally {
      this.#flushing = null;
    }
  }

  /** Write one batch; returns the outcomes to try again later (transient errors). */
  async #write(batch: readonly Outcome[]): Promise<Outcome[]> {
    const later: Outcome[] = [];
    const successes: Array<Extract<Outcome, { kind: "success" }>> = [];
    const failures: Array<Extract<Outcome, { kind: "failure" }>> = [];
    for (const o of batch) {
      if (o.kind === "success") successes.push(o);
      else failures.push(o);
    }
    let lost: unknown = null;
    if (successes.length) {
      try {
        await this.#complete(successes);
      } catch (error) {
        if (isProcError(error, "CONNECTION_ERROR")) lost = error;
        else await this.#completeOneByOne(successes, later, failures);
      }
      if (lost) later.push(...successes);
    }
    for (const f of failures) {
      if (lost) {
        later.push(f);
        continue;
      }
      try {
        await this.#fail(f);
      } catch (error) {
        if (isProcError(error, "CONNECTION_ERROR")) lost = error;
        if (isTransientError(error)) this.#later(later, f, error);
        else await this.#rejected(f, error);
      }
    }
    if (later.length) this.#report(lost ?? this.#transient, later.length);
    return later;
  }

  #later(later: Outcome[], outcome: Outcome, error: unknown): void {
    later.push(outcome);
    this.#transient = error;
  }

  async #complete(successes: ReadonlyArray<Extract<Outcome, { kind: "success" }>>): Promise<void> {
    const done = new Set(
      await this.#options.jobManager().completeJobs(
        successes.map((s) => ({ id: s.job.id, run: s.job.run, result: s.result })),
        this.#options.deleteJobs !== "never",
      ),
    );
    for (const s of successes) {
      this.#unwritten.delete(s.job.id);
      if (!done.has(s.job.id)) this.#stale(s);
    }
  }

  /**
   * The database refused a batch of successes (a lock wait timed out, or a value it
   * would not take): write them one by one, so that one bad or locked job cannot hold
   * back the others.
   */
  async #completeOneByOne(
    successes: ReadonlyArray<Extract<Outcome, { kind: "success" }>>,
    later: Outcome[],
    failures: Outcome[],
  ): Promise<void> {
    for (const [i, s] of successes.entries()) {
      try {
        await this.#complete([s]);
      } catch (error) {
        if (isProcError(error, "CONNECTION_ERROR")) {
          later.push(...successes.slice(i));
          return;
        }
        if (isTransientError(error)) this.#later(later, s, error);
        else failures.push(rejectedOutcome(s, error));
      }
    }
  }

  async #fail(f: Extract<Outcome, { kind: "failure" }>): Promise<void> {
    const status = await this.#options.jobManager().failJob(f.job, {
      status: f.status,
      error: f.error,
      ...(f.retry && { retry: f.retry }),
      delete: this.#options.deleteJobs === "always",
    });
    this.#unwritten.delete(f.job.id);
    if (status === null) this.#stale(f);
  }

  /** The database refused failure `f` for what it holds: write a plain stand-in instead. */
  async #rejected(f: Extract<Outcome, { kind: "failure" }>, error: unknown): Promise<void> {
    if (f.rejected) {
      // Even the stand-in, a plain text error, was refused: nothing sensible is left to
      // write. The job stays doing until this worker stops (it is then recovered).
      this.#unwritten.delete(f.job.id);
      this.#options.logger.error(
        { action: "outcome_rejected", jobId: f.job.id, run: f.job.run, error },
        `job ${f.job.id}: the database refused to record any outcome of this run`,
      );
      return;
    }
    const standIn = rejectedOutcome(f, error);
    try {
      await this.#fail(standIn);
    } catch (again) {
      if (isTransientError(again)) this.#pending.push(standIn);
      else await this.#rejected(standIn, again);
    }
  }

  #stale(o: Outcome): void {
    this.#options.logger.warn(
      {
        action: "stale_outcome",
        jobId: o.job.id,
        run: o.job.run,
        outcome: o.kind === "success" ? "succeeded" : o.status,
      },
      `job ${o.job.id}: the outcome of run ${o.job.run} was refused: the job was recovered or claimed again meanwhile`,
    );
  }

  #report(error: unknown, pending: number): void {
    this.#options.logger.error(
      { action: "finish_error", error, pending },
      "could not record finished jobs; retrying",
    );
    this.#options.onError(error);
  }
}

/**
 * What is written instead of an outcome the database refused: the job fails, not
 * retried (the same outcome would be refused again), with an error that says why and
 * keeps what it can of the original, as plain text Postgres always accepts.
 */
function rejectedOutcome(o: Outcome, error: unknown): Extract<Outcome, { kind: "failure" }> {
  const reason = storableText(error instanceof Error ? error.message : String(error));
  const original =
    o.kind === "success"
      ? "the run succeeded, but its result could not be stored"
      : `the run ended ${o.status === "todo" ? "with a retry" : o.status}: ${o.error.name}: ${o.error.message}`;
  const standIn = serializeError(
    Object.assign(new Error(`the database refused to record this run's outcome (${reason}); ${original}`), {
      name: "OutcomeRejected",
    }),
  );
  delete standIn.stack; // the worker's own stack says nothing about the job
  return { kind: "failure", job: o.job, status: "failed", error: standIn, rejected: true };
}
