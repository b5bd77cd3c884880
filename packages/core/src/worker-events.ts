import type { Job, JobStatus } from "./job.js";
import type { JsonValue } from "./json.js";

/** What an event says about the worker that emitted it. A `Worker` of @proc/worker is one. */
export interface EventWorker {
  /** The worker's name (`${hostname}-${pid}` unless set). */
  readonly name: string;
  /** The worker's row id once registered, else null. */
  readonly id: number | null;
}

/** Why a running job's signal aborted. */
export type AbortReason = "abort_requested" | "timeout" | "shutdown" | "recovered";

/**
 * The events a worker emits, on itself and on its app: observers that hold only the app
 * (metrics, tracing, error reporting) see every worker of the process. One payload object
 * per event, naming the worker. Every run that starts ends with exactly one of
 * `job:success`, `job:retry` (failed, retried later) or `job:error` (failed, aborted).
 */
export interface WorkerEventMap<W extends EventWorker = EventWorker> {
  "worker:start": { worker: W; workerId: number };
  "worker:stop": { worker: W; workerId: number | null };
  "worker:error": { worker: W; error: unknown; action: string };
  /** A fetch claimed `count` jobs (0 is not reported). */
  "worker:fetch": { worker: W; count: number };
  /** The worker got through to the database again after losing it (a heartbeat or fetch failed). */
  "worker:reconnect": { worker: W };
  /** A batch of `count` outcomes was written, taking `durationMs` (retries included). */
  "worker:outcomes": { worker: W; count: number; durationMs: number };
  "job:start": { worker: W; job: Job };
  "job:success": { worker: W; job: Job; result: JsonValue | null; durationMs: number };
  "job:error": { worker: W; job: Job; error: unknown; durationMs: number; status: JobStatus };
  "job:retry": { worker: W; job: Job; error: unknown; retryAt: Date; durationMs: number };
  /** The job's signal aborted while it runs (the run goes on until the task returns). */
  "job:abort": { worker: W; job: Job; reason: AbortReason };
}
