import type { SystemName } from "./config.js";

/**
 * Wall-clock milliseconds with sub-millisecond resolution. Parent and worker child compare
 * these across processes on one machine: both derive from the same system clock.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The payload of every benchmark job: an index, for latency runs the defer time, and for
 * the memory scenario a padding string (args of a realistic size).
 */
export interface JobArgs {
  i: number;
  sentAt?: number;
  pad?: string;
}

/** What the parent tells a worker child to do (its first IPC message). */
export interface ChildConfig {
  system: SystemName;
  databaseUrl: string;
  concurrency: number;
  /**
   * "drain": report once `expectedJobs` handlers ran; "latency": report every start;
   * "share": report the running count of handled jobs (throttled) and the first start,
   * for runs of several worker processes that share one queue.
   */
  mode: "drain" | "latency" | "share";
  expectedJobs: number;
  /** Each handler waits this long (ms) before it resolves; 0 or absent: a no-op. */
  jobMs?: number;
  /**
   * No LISTEN (PgBouncer in transaction mode): the worker polls. Only systems whose
   * `transactionPooling` is set support it.
   */
  noListen?: boolean;
  /**
   * Sample the heap that survives a full GC every `heldSampleMs` (the child runs with
   * --expose-gc): what the worker holds, not what it has yet to collect. Slows the worker.
   */
  heldSampleMs?: number;
}

/** Memory of a worker child over its run, in bytes. */
export interface MemoryReport {
  peakRss: number;
  /** RSS and post-GC heap just after the worker started (before any job ran), when sampled. */
  idleRss: number;
  idleHeld: number | null;
  /** Largest post-GC heapUsed + external seen (null unless heldSampleMs was set). */
  peakHeld: number | null;
}

export type ChildMessage =
  /** Sent just before the worker is started: the drain clock starts here. */
  | { type: "starting"; at: number }
  /** The worker's start call returned (it is fetching, or listening when idle). */
  | { type: "started"; at: number }
  | { type: "handled-all"; at: number }
  | { type: "job-start"; sentAt: number; at: number }
  /** "share" mode: jobs handled so far (sent at most every few ms) and the first start. */
  | { type: "count"; handled: number }
  | { type: "first-job"; at: number }
  | { type: "stopped"; memory: MemoryReport; handled: number }
  | { type: "error"; message: string };

export type ParentMessage = ChildConfig | { type: "stop" };
