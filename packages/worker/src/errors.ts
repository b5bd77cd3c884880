import { types } from "node:util";
import { type AbortReason, type JobError, storableText } from "@proc/core";

export type { AbortReason };

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

/**
 * `ctx.signal.reason` when this run of the job is no longer the job's current run: its
 * worker was judged dead (a silence longer than the stall threshold, e.g. a network
 * partition) and the job was recovered, maybe to run elsewhere. Whatever this run does
 * now, its outcome is refused (fencing): the task should stop.
 */
export class JobRecoveredError extends Error {
  readonly reason: AbortReason = "recovered";
  readonly jobId: number;
  readonly run: number;
  constructor(jobId: number, run: number) {
    super(
      `job ${jobId} was recovered elsewhere while this run (run ${run}) was going on: ` +
        "stop, this run's outcome will not be recorded",
    );
    this.name = "JobRecoveredError";
    this.jobId = jobId;
    this.run = run;
  }
}

/** Longest message or stack stored: one error must not make a huge row. */
const MAX_TEXT = 65_536;
/** Longest name or code stored: they are identifiers, not prose. */
const MAX_NAME = 1_024;

/**
 * What a thrown value becomes in `job.error` and the job's history: always a JobError
 * that Postgres stores (NUL and lone surrogates become U+FFFD, long text is cut, see
 * storableText), and never a throw, whatever was thrown: an error whose getters throw,
 * a Proxy, a Symbol, a BigInt, null. A JobError the database refused would leave the
 * worker's outcome writer retrying forever.
 */
export function serializeError(error: unknown): JobError {
  if (attempt(() => error instanceof Error || types.isNativeError(error)) === true) {
    const e = error as Error & { code?: unknown };
    const name = attempt(() => e.name);
    const message = attempt(() => e.message);
    const out: JobError = {
      name: name === undefined ? "Error" : storableText(textOf(name), MAX_NAME),
      message: message === undefined ? "" : storableText(textOf(message), MAX_TEXT),
    };
    const stack = attempt(() => e.stack);
    if (stack) out.stack = storableText(textOf(stack), MAX_TEXT);
    const code = attempt(() => e.code);
    if (typeof code === "string") out.code = storableText(code, MAX_NAME);
    else if (typeof code === "number" && Number.isFinite(code)) out.code = code;
    return out;
  }
  return {
    name: "NonError",
    message: storableText(`a non-Error value was thrown: ${textOf(error, true)}`, MAX_TEXT),
  };
}

/** `read()`, or undefined if it throws (a getter, a Proxy trap). */
function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

/**
 * Any value as text, without throwing: strings as they are, objects as JSON when they
 * have a JSON form (`json`), else through String() (Symbols and BigInts included).
 */
function textOf(value: unknown, json = false): string {
  if (typeof value === "string") return value;
  if (typeof value === "bigint") return `${value}n`;
  const text =
    (json ? attempt(() => JSON.stringify(value)) : undefined) ??
    attempt(() => String(value)) ??
    attempt(() => Object.prototype.toString.call(value));
  return text ?? "an unprintable value";
}
