import type { SystemName } from "./config.js";

/**
 * Wall-clock milliseconds with sub-millisecond resolution. Parent and worker child compare
 * these across processes on one machine: both derive from the same system clock.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The payload of every benchmark job: an index, and for latency runs the defer time. */
export interface JobArgs {
  i: number;
  sentAt?: number;
  [key: string]: number | undefined;
}

/** What the parent tells a worker child to do (its first IPC message). */
export interface ChildConfig {
  system: SystemName;
  databaseUrl: string;
  concurrency: number;
  /** "drain": report once `expectedJobs` handlers ran; "latency": report every start. */
  mode: "drain" | "latency";
  expectedJobs: number;
}

export type ChildMessage =
  /** Sent just before the worker is started: the drain clock starts here. */
  | { type: "starting"; at: number }
  /** The worker's start call returned (it is fetching, or listening when idle). */
  | { type: "started"; at: number }
  | { type: "handled-all"; at: number }
  | { type: "job-start"; sentAt: number; at: number }
  | { type: "stopped"; peakRssBytes: number }
  | { type: "error"; message: string };

export type ParentMessage = ChildConfig | { type: "stop" };
