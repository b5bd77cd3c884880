import type { JobError } from "@proc/core";

export type AbortReason = "abort_requested" | "timeout" | "shutdown";

/** `ctx.signal.reason` when the job was asked to abort (cancelJob with abort). */
export class JobAbortedError extends Error {
  readonly reason: AbortReason = "abort_requested";
  constructor(message = "the job was asked to abort") {
    super(message);
    this.name = "JobAbortedError";
  }
}

/** `ctx.signal.reason` when the task's `timeout` passed. */
export class JobTimeoutError extends Error {
  readonly reason: AbortReason = "timeout";
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`the job did not finish within its timeout of ${timeoutMs} ms`);
    this.name = "JobTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/** `ctx.signal.reason` when the worker stops before the job finished. */
export class WorkerShutdownError extends Error {
  readonly reason: AbortReason = "shutdown";
  constructor(message: string) {
    super(message);
    this.name = "WorkerShutdownError";
  }
}

/** What a thrown value becomes in `job.error` and the job's history. */
export function serializeError(error: unknown): JobError {
  if (error instanceof Error) {
    const out: JobError = { name: error.name, message: error.message };
    if (error.stack) out.stack = error.stack;
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" || typeof code === "number") out.code = code;
    return out;
  }
  let message: string;
  try {
    message = typeof error === "string" ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    message = String(error);
  }
  return { name: "NonError", message: `a non-Error value was thrown: ${message}` };
}
