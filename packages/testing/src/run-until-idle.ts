import {
  type App,
  AppNotOpen,
  type Duration,
  InvalidOptions,
  type Job,
  type JobStatus,
  type JsonValue,
  type Logger,
  durationMs,
} from "@proc/core";
import { Worker, type WorkerOptions } from "@proc/worker";
import { describeJob } from "./format.js";
import { quietLogger } from "./quiet-logger.js";
import { type TestAppInternals, testAppOf } from "./test-app.js";

export interface RunUntilIdleOptions
  extends Pick<WorkerOptions, "queues" | "concurrency" | "additionalContext" | "middleware" | "deleteJobs"> {
  /**
   * Let this much clock time pass while the worker runs (needs an app from
   * createTestApp): the clock steps to each periodic tick, scheduled job and retry that
   * falls due on the way, in order, and runs until idle at each, as a worker running all
   * that time would have. Ends with the clock moved by exactly this much.
   */
  advance?: Duration;
  /**
   * Most job runs in one call: more means a job keeps deferring jobs (maybe itself), and
   * the call stops its worker and throws, naming the chain. @defaultValue 1000
   */
  maxJobs?: number;
  /**
   * Longest time, in real ms, that a job may run with no other job finishing meanwhile:
   * past it the worker is stopped (running jobs aborted) and the call throws, naming
   * them. Below your test framework's timeout, so that this message is what you see.
   * @defaultValue 4000
   */
  timeout?: number;
  /** Once idle, throw if any run failed (or was retried, or aborted), with its error as `cause`. @defaultValue false */
  throwOnError?: boolean;
  /** @defaultValue the app's logger, warnings and errors only */
  logger?: Logger;
}

/** One run of a job during runUntilIdle. */
export interface JobRun {
  /** The job as the worker claimed it: its args, queue, attempts, … (`status` is doing). */
  job: Job;
  /** The status the run left the job in: `todo` when it is to be retried. */
  status: Extract<JobStatus, "succeeded" | "failed" | "aborted" | "todo">;
  /** What the task returned (succeeded runs). */
  result: JsonValue | null;
  /** What the task threw (other runs). */
  error: unknown;
  /** When the job is retried (status `todo`). */
  retryAt: Date | null;
}

export interface RunUntilIdleResult {
  /** Every run, in the order they started: a job retried within the call appears once per run. */
  runs: JobRun[];
  succeeded: number;
  failed: number;
  /** Runs that failed and will be retried (their job is `todo` again, scheduled later). */
  retried: number;
  aborted: number;
}

export type RunUntilIdleErrorReason = "maxJobs" | "timeout" | "jobError";

/** runUntilIdle gave up (`maxJobs`, `timeout`) or, with `throwOnError`, a run did not succeed. */
export class RunUntilIdleError extends Error {
  readonly reason: RunUntilIdleErrorReason;
  /** What ran before it gave up. */
  readonly result: RunUntilIdleResult;
  constructor(
    reason: RunUntilIdleErrorReason,
    message: string,
    result: RunUntilIdleResult,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RunUntilIdleError";
    this.reason = reason;
    this.result = result;
  }
}

const DEFAULTS = { maxJobs: 1000, timeout: 4000, concurrency: 1 } as const;

/**
 * Run the app's jobs with a real Worker (one-shot) until no job is ready, including the
 * jobs those jobs defer. On a test app, the periodic jobs due by the clock's time are
 * deferred first. Never leaves a worker running, and never runs forever (see `maxJobs`
 * and `timeout`). Resolves with every run and its outcome.
 */
export async function runUntilIdle(app: App, options: RunUntilIdleOptions = {}): Promise<RunUntilIdleResult> {
  const settings = resolveOptions(options);
  if (!app?.isOpen)
    throw new AppNotOpen("run jobs until idle (createTestApp(app) opens it on a test database)");
  const test = testAppOf(app);
  if (settings.advanceMs !== null && !test)
    throw new InvalidOptions("runUntilIdle", [
      "advance: needs an app from createTestApp(), whose clock it moves (this app is not running in one)",
    ]);
  const state = new RunState(settings.maxJobs);
  const run = new Runner(app, settings, state);
  // With one job running, what is deferred meanwhile was deferred by it.
  const offDeferred = app.on("job:deferred", ({ ids }) => {
    state.deferrals += ids.length;
    if (state.running.size !== 1) return;
    const [parent] = state.running.keys();
    for (const id of ids) state.parents.set(id, parent!);
  });
  try {
    await test?.services.poke();
    await run.untilIdle();
    if (test && settings.advanceMs !== null) await advanceWhileRunning(app, test, settings, run, state);
  } finally {
    offDeferred();
  }

  const result = state.result();
  if (settings.throwOnError) {
    const bad = result.runs.find((r) => r.status !== "succeeded");
    if (bad)
      throw new RunUntilIdleError(
        "jobError",
        `${describeJob(bad.job)} ended ${bad.status === "todo" ? "in a retry" : bad.status}: ${errorText(bad.error)}`,
        result,
        { cause: bad.error },
      );
  }
  return result;
}

/** The clock steps to each thing that falls due before the target, running until idle at each. */
async function advanceWhileRunning(
  app: App,
  test: TestAppInternals,
  settings: Settings,
  run: Runner,
  state: RunState,
): Promise<void> {
  const { clock, services } = test;
  const target = clock.now() + settings.advanceMs!;
  for (;;) {
    const scheduled =
      (await app.jobManager.nextScheduledAt(settings.worker.queues ?? null))?.getTime() ?? null;
    const tick = services.nextWakeAt();
    const next = Math.min(scheduled ?? Number.POSITIVE_INFINITY, tick ?? Number.POSITIVE_INFINITY);
    if (next > target) break;
    const deferred = state.deferrals;
    await clock.set(Math.max(next, clock.now()));
    // A scheduler wake-up that deferred nothing needs no worker.
    if (next === scheduled || state.deferrals !== deferred) await run.untilIdle();
  }
  await clock.set(target);
  await run.untilIdle();
}

interface Settings {
  advanceMs: number | null;
  maxJobs: number;
  timeout: number;
  throwOnError: boolean;
  worker: WorkerOptions;
}

function resolveOptions(options: RunUntilIdleOptions): Settings {
  const problems: string[] = [];
  const { advance, maxJobs, timeout, throwOnError, logger, ...worker } = options;
  const advanceMs =
    advance === undefined
      ? null
      : typeof advance === "number" || (typeof advance === "object" && advance !== null)
        ? durationMs(advance)
        : Number.NaN;
  if (advanceMs !== null && !(Number.isFinite(advanceMs) && advanceMs >= 0))
    problems.push("advance: expected a duration >= 0 (ms or { minutes: 10 })");
  if (maxJobs !== undefined && !(Number.isInteger(maxJobs) && maxJobs > 0))
    problems.push(`maxJobs: expected a positive integer (got ${String(maxJobs)})`);
  if (timeout !== undefined && !(Number.isFinite(timeout) && timeout > 0 && timeout <= 2_147_483_647))
    problems.push(`timeout: expected ms between 1 and 2147483647 (got ${String(timeout)})`);
  if (problems.length) throw new InvalidOptions("runUntilIdle", problems);
  return {
    advanceMs,
    maxJobs: maxJobs ?? DEFAULTS.maxJobs,
    timeout: timeout ?? DEFAULTS.timeout,
    throwOnError: throwOnError ?? false,
    worker: { concurrency: DEFAULTS.concurrency, ...worker, ...(logger ? { logger } : {}) },
  };
}

/** What one call saw: every run, and which job's run deferred which job. */
class RunState {
  readonly runs: JobRun[] = [];
  /** Runs started and not settled yet, by job id. */
  readonly running = new Map<number, JobRun>();
  /** Job id → the id of the job whose run deferred it. */
  readonly parents = new Map<number, number>();
  /** Jobs deferred during the call (any cause). */
  deferrals = 0;
  readonly maxJobs: number;

  constructor(maxJobs: number) {
    this.maxJobs = maxJobs;
  }

  result(): RunUntilIdleResult {
    const count = (status: JobRun["status"]) => this.runs.filter((r) => r.status === status).length;
    return {
      runs: [...this.runs],
      succeeded: count("succeeded"),
      failed: count("failed"),
      retried: count("todo"),
      aborted: count("aborted"),
    };
  }
}

/** Runs one-shot workers until one finds nothing to run. */
class Runner {
  readonly #app: App;
  readonly #settings: Settings;
  readonly #state: RunState;

  constructor(app: App, settings: Settings, state: RunState) {
    this.#app = app;
    this.#settings = settings;
    this.#state = state;
  }

  /**
   * A one-shot worker stops once no job is ready; it also picks up the jobs that its jobs
   * defer. Another round catches what arrived as it stopped (a task's deferral it did not
   * await, a periodic job its own scheduler deferred), until a round runs nothing.
   */
  async untilIdle(): Promise<void> {
    while ((await this.#round()) > 0);
  }

  async #round(): Promise<number> {
    const app = this.#app;
    const state = this.#state;
    const { timeout, maxJobs } = this.#settings;
    const worker = new Worker(app, {
      ...this.#settings.worker,
      logger: this.#settings.worker.logger ?? quietLogger(app.logger),
      name: "proc-testing",
      wait: false,
      handleSignals: false,
    });
    const running = state.running;
    running.clear();
    let started = 0;
    let gaveUp: { reason: "maxJobs" | "timeout"; stuck: JobRun[] } | null = null;

    let watchdog: NodeJS.Timeout | undefined;
    const progress = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        gaveUp ??= { reason: "timeout", stuck: [...running.values()] };
        void worker.stopNow();
      }, timeout);
    };
    const settle = (job: Job, outcome: Omit<JobRun, "job">) => {
      progress();
      const run = running.get(job.id);
      running.delete(job.id);
      if (run) Object.assign(run, outcome);
      else state.runs.push({ job, ...outcome }); // aborted while prefetched: it never started
    };
    worker.on("job:start", ({ job }) => {
      progress();
      started++;
      if (state.runs.length >= maxJobs && !gaveUp) {
        gaveUp = { reason: "maxJobs", stuck: [] };
        void worker.stop();
      }
      const run: JobRun = { job, status: "todo", result: null, error: null, retryAt: null };
      running.set(job.id, run);
      state.runs.push(run);
    });
    worker.on("job:success", ({ job, result }) =>
      settle(job, { status: "succeeded", result, error: null, retryAt: null }),
    );
    worker.on("job:retry", ({ job, error, retryAt }) =>
      settle(job, { status: "todo", result: null, error, retryAt }),
    );
    worker.on("job:error", ({ job, error, status }) =>
      settle(job, {
        status: status === "aborted" ? "aborted" : "failed",
        result: null,
        error,
        retryAt: null,
      }),
    );
    progress();
    try {
      await worker.run();
    } finally {
      clearTimeout(watchdog);
    }
    // TypeScript cannot see the listeners' assignments.
    const failure = gaveUp as { reason: "maxJobs" | "timeout"; stuck: JobRun[] } | null;
    if (failure?.reason === "maxJobs")
      throw new RunUntilIdleError("maxJobs", runawayMessage(state), state.result());
    if (failure?.reason === "timeout")
      throw new RunUntilIdleError("timeout", stuckMessage(failure.stuck, timeout), state.result());
    return started;
  }
}

function runawayMessage(state: RunState): string {
  const last = state.runs.at(-1)!.job;
  // Follow the chain of deferrals back from the last job that ran.
  const chain: Job[] = [last];
  const byId = new Map(state.runs.map((r) => [r.job.id, r.job]));
  for (
    let id = state.parents.get(last.id);
    id !== undefined && chain.length < 50;
    id = state.parents.get(id)
  ) {
    const parent = byId.get(id);
    if (!parent) break;
    chain.push(parent);
  }
  const byTask = new Map<string, number>();
  for (const r of state.runs) byTask.set(r.job.task, (byTask.get(r.job.task) ?? 0) + 1);
  const counts = [...byTask]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([task, n]) => `${task} ×${n}`)
    .join(", ");
  const head = `runUntilIdle stopped its worker: more than ${state.maxJobs} job runs (maxJobs)`;
  if (chain.length < 2)
    return `${head}. Runs by task: ${counts}. Raise maxJobs if the test really needs that many.`;
  const culprit = chain[1]!;
  const shown = chain
    .slice(0, 4)
    .map((j) => describeJob(j))
    .join(" ← deferred by ");
  return (
    `${head}: task ${JSON.stringify(culprit.task)} keeps deferring ` +
    `${chain[0]!.task === culprit.task ? "itself" : `task ${JSON.stringify(chain[0]!.task)}`}: ` +
    `${shown}${chain.length > 4 ? " ← …" : ""}. Runs by task: ${counts}. ` +
    "Make the task stop deferring (or defer with a schedule), or raise maxJobs."
  );
}

function stuckMessage(stuck: JobRun[], timeout: number): string {
  const jobs = stuck.length ? stuck.map((r) => describeJob(r.job)).join(", ") : "no job (the worker itself)";
  return (
    `runUntilIdle stopped its worker: nothing finished for ${timeout} ms (timeout) while running ${jobs}; ` +
    "it was aborted. Does the task await something that never settles? Raise timeout if it is only slow."
  );
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
