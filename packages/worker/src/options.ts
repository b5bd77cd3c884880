import { hostname } from "node:os";
import {
  type DurationRules,
  InvalidOptions,
  type Logger,
  type TaskMiddleware,
  checkDuration,
} from "@proc/core";
import { PROBES_DEFAULT_HOST, type ProbesOptions, probesProblems } from "./probes.js";

export type { TaskMiddleware };

export type DeleteJobs = "never" | "successful" | "always";

export interface WorkerOptions {
  /** Queues to take jobs from. @defaultValue all queues */
  queues?: readonly string[] | null;
  /** Jobs run at the same time. @defaultValue 1 */
  concurrency?: number;
  /** Shown in logs and `proc workers`. @defaultValue `${hostname}-${pid}` */
  name?: string;
  /** false: one-shot, stop once no job is ready. @defaultValue true */
  wait?: boolean;
  /** Fallback fetch when no NOTIFY came, in ms (at most 2147483647, as every timer). @defaultValue 5000 */
  pollInterval?: number;
  /** Wake on NOTIFY for new jobs and abort requests. Off for PgBouncer in transaction mode. @defaultValue true */
  listenNotify?: boolean;
  /**
   * How long a graceful stop waits for running jobs before aborting them, in ms: 0 to
   * 2147483647 (about 24.8 days), or Infinity to wait forever. @defaultValue 25000
   */
  shutdownTimeout?: number;
  /** Handle SIGINT/SIGTERM (first: graceful, second: abort now). false when embedding. @defaultValue true */
  handleSignals?: boolean;
  /** Delete jobs when they finish instead of keeping them (and their history). @defaultValue "never" */
  deleteJobs?: DeleteJobs;
  /** Worker heartbeat period in ms (at most 2147483647); stalled detection uses a multiple of it. @defaultValue 5000 */
  heartbeatInterval?: number;
  /** How often running jobs are checked for abort requests when NOTIFY is off, in ms (at most 2147483647). @defaultValue 1000 */
  abortPollInterval?: number;
  /**
   * How often the worker ends expired jobs that no claim reached (JobOptions.expireIn), in
   * ms (at most 2147483647). A claim never starts an expired job whatever this is; the
   * sweep makes the others show as cancelled (reason "expired"). @defaultValue 10000
   */
  expiryInterval?: number;
  /** Most jobs claimed per fetch round trip, and most outcomes written per call. @defaultValue max(concurrency, 500) */
  fetchBatchSize?: number;
  /**
   * Most jobs claimed ahead of free slots, so that short jobs never wait for a fetch
   * round trip. The worker only prefetches about as many jobs as it finishes during two
   * fetch round trips: none for slow jobs, which therefore stay available to other
   * workers. 0 disables prefetching. @defaultValue 2000
   */
  prefetch?: number;
  /**
   * Most memory, in bytes, that prefetched jobs may hold: their size as claimed (their
   * JSON, args included), averaged over recent claims. With large args the worker
   * prefetches fewer jobs rather than hold megabytes it does not need yet (10 KB args:
   * about 400 jobs, not 2000). Jobs running in a slot are not counted. @defaultValue
   * 4194304 (4 MiB)
   */
  prefetchBytes?: number;
  /** Merged into every task's context (see AdditionalContext in @proc/core). */
  additionalContext?: Record<string, unknown>;
  /** Wrap every task run, outermost first. */
  middleware?: readonly TaskMiddleware[];
  /** @defaultValue the app's logger */
  logger?: Logger;
  /**
   * Serve `/livez` and `/readyz` over HTTP on this port while the worker runs, for
   * orchestrators (Kubernetes). host defaults to "127.0.0.1"; set "0.0.0.0" in a pod.
   * @defaultValue null (no server)
   */
  probes?: ProbesOptions | null;
}

export type ResolvedWorkerOptions = Required<Omit<WorkerOptions, "logger" | "queues" | "probes">> & {
  queues: readonly string[] | null;
  probes: Required<ProbesOptions> | null;
};

/** Every default in one place. */
export const WORKER_DEFAULTS = {
  concurrency: 1,
  wait: true,
  pollInterval: 5000,
  listenNotify: true,
  shutdownTimeout: 25_000,
  handleSignals: true,
  deleteJobs: "never" as DeleteJobs,
  heartbeatInterval: 5000,
  abortPollInterval: 1000,
  expiryInterval: 10_000,
  prefetchBytes: 4 * 2 ** 20,
} as const;

/** Validates every option at once and reports all problems in one error. */
export function resolveWorkerOptions(options: WorkerOptions): ResolvedWorkerOptions {
  const problems: string[] = [];
  const positiveInteger = (key: keyof WorkerOptions) => {
    const v = options[key];
    if (v !== undefined && !(Number.isInteger(v) && (v as number) > 0))
      problems.push(`${key}: expected a positive integer (got ${String(v)})`);
  };
  positiveInteger("concurrency");
  positiveInteger("fetchBatchSize");
  if (options.prefetch !== undefined && !(Number.isInteger(options.prefetch) && options.prefetch >= 0))
    problems.push(`prefetch: expected an integer >= 0 (got ${String(options.prefetch)})`);
  if (
    options.prefetchBytes !== undefined &&
    !(Number.isSafeInteger(options.prefetchBytes) && options.prefetchBytes >= 0)
  )
    problems.push(
      `prefetchBytes: expected a number of bytes >= 0, such as 4194304 for 4 MiB (got ${String(options.prefetchBytes)})`,
    );
  // Each drives a timer; Node fires a longer one after 1 ms. Infinity is fine for
  // shutdownTimeout only: the drain then waits without a timer.
  const duration = (key: keyof WorkerOptions, rules?: DurationRules) => {
    const problem = options[key] === undefined ? null : checkDuration(key, options[key], rules);
    if (problem) problems.push(problem);
  };
  duration("pollInterval");
  duration("heartbeatInterval");
  duration("abortPollInterval");
  duration("expiryInterval");
  duration("shutdownTimeout", { allowInfinity: true, allowZero: true });
  if (options.queues != null) {
    if (!Array.isArray(options.queues) || options.queues.some((q) => typeof q !== "string" || q.length === 0))
      problems.push("queues: expected an array of non-empty queue names (omit it for all queues)");
    else if (options.queues.length === 0)
      problems.push("queues: an empty list would fetch nothing; omit it for all queues");
  }
  if (options.deleteJobs !== undefined && !["never", "successful", "always"].includes(options.deleteJobs))
    problems.push(
      `deleteJobs: expected "never", "successful" or "always" (got ${JSON.stringify(options.deleteJobs)})`,
    );
  if (
    options.middleware !== undefined &&
    (!Array.isArray(options.middleware) || options.middleware.some((m) => typeof m !== "function"))
  )
    problems.push("middleware: expected an array of functions (ctx, next) => Promise");
  if (
    options.name !== undefined &&
    (typeof options.name !== "string" || options.name.length === 0 || options.name.length > 200)
  )
    problems.push("name: expected a non-empty string of at most 200 characters");
  problems.push(...probesProblems(options.probes));
  if (problems.length) throw new InvalidOptions("Worker", problems);
  const concurrency = options.concurrency ?? WORKER_DEFAULTS.concurrency;
  return {
    ...WORKER_DEFAULTS,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    concurrency,
    queues: options.queues ?? null,
    name: options.name ?? `${hostname()}-${process.pid}`,
    fetchBatchSize: options.fetchBatchSize ?? Math.max(concurrency, 500),
    prefetch: options.prefetch ?? 2000,
    additionalContext: options.additionalContext ?? {},
    middleware: options.middleware ?? [],
    probes: options.probes
      ? { port: options.probes.port, host: options.probes.host ?? PROBES_DEFAULT_HOST }
      : null,
  } as ResolvedWorkerOptions;
}
