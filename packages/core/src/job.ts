import type { JsonObject, JsonValue } from "./json.js";

export const JOB_STATUSES = ["todo", "doing", "succeeded", "failed", "cancelled", "aborted"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** Statuses a job never leaves on its own. */
export const FINAL_STATUSES: readonly JobStatus[] = ["succeeded", "failed", "cancelled", "aborted"];

/** One entry of a job's history. */
export interface JobEvent {
  type: string;
  at: Date;
  [key: string]: unknown;
}

/** How a failed run is recorded (in `job.error` and in the history). */
export interface JobError {
  name: string;
  message: string;
  stack?: string;
  [key: string]: JsonValue | undefined;
}

export interface Job<Args = JsonObject> {
  id: number;
  queue: string;
  task: string;
  priority: number;
  lock: string | null;
  queueingLock: string | null;
  args: Args;
  status: JobStatus;
  scheduledAt: Date | null;
  /** Runs started so far, including the current one. */
  attempts: number;
  /** How many times the job was recovered after its worker died. */
  stalledCount: number;
  workerId: number | null;
  abortRequested: boolean;
  result: JsonValue | null;
  error: JobError | null;
  events: JobEvent[];
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** A job row as the SQL functions return it. */
export interface JobRow {
  id: string | number;
  queue_name: string;
  task_name: string;
  priority: number;
  lock: string | null;
  queueing_lock: string | null;
  args: unknown;
  status: JobStatus;
  scheduled_at: Date | string | null;
  attempts: number;
  stalled_count: number;
  worker_id: string | number | null;
  abort_requested: boolean;
  result: unknown;
  error: unknown;
  events: unknown;
  created_at: Date | string;
  started_at: Date | string | null;
  finished_at: Date | string | null;
}

const toDate = (v: Date | string | null): Date | null =>
  v === null ? null : v instanceof Date ? v : new Date(v);

/**
 * A job's history from its stored events. Both drivers (pg, PGlite) hand jsonb columns
 * over already parsed, into objects of our own: their "at" becomes a Date in place. The
 * first entry, deferred at createdAt, is not stored (see the events column in schema.sql).
 */
function eventsFrom(stored: unknown, createdAt: Date): JobEvent[] {
  const events: JobEvent[] = [{ type: "deferred", at: new Date(createdAt.getTime()) }];
  for (const e of (stored as Array<Record<string, unknown>> | null) ?? []) {
    e.at = new Date(String(e.at));
    e.type = String(e.type);
    events.push(e as JobEvent);
  }
  return events;
}

export function jobFromRow(row: JobRow): Job {
  const createdAt = toDate(row.created_at) as Date;
  const events = eventsFrom(row.events, createdAt);
  return {
    id: Number(row.id),
    queue: row.queue_name,
    task: row.task_name,
    priority: row.priority,
    lock: row.lock,
    queueingLock: row.queueing_lock,
    args: row.args as JsonObject,
    status: row.status,
    scheduledAt: toDate(row.scheduled_at),
    attempts: row.attempts,
    stalledCount: row.stalled_count,
    workerId: row.worker_id === null ? null : Number(row.worker_id),
    abortRequested: row.abort_requested,
    result: (row.result as JsonValue | undefined) ?? null,
    error: (row.error as JobError | null) ?? null,
    events,
    createdAt,
    startedAt: toDate(row.started_at),
    finishedAt: toDate(row.finished_at),
  };
}

/** A row of fetch_jobs_v1: what a worker does not know yet about a job it has just claimed. */
export interface FetchedJobRow {
  id: string | number;
  queue_name: string;
  task_name: string;
  priority: number;
  lock: string | null;
  queueing_lock: string | null;
  args: unknown;
  attempts: number;
  stalled_count: number;
  error: unknown;
  events: unknown;
  scheduled_at_ms: number | null;
  created_at_ms: number;
  started_at_ms: number;
}

/** The Job a fetch claimed for `workerId`: doing on that worker, not finished. */
export function fetchedJobFromRow(row: FetchedJobRow, workerId: number): Job {
  const createdAt = new Date(row.created_at_ms);
  return {
    id: Number(row.id),
    queue: row.queue_name,
    task: row.task_name,
    priority: row.priority,
    lock: row.lock,
    queueingLock: row.queueing_lock,
    args: row.args as JsonObject,
    status: "doing",
    scheduledAt: row.scheduled_at_ms === null ? null : new Date(row.scheduled_at_ms),
    attempts: row.attempts,
    stalledCount: row.stalled_count,
    workerId,
    abortRequested: false,
    result: null,
    error: (row.error as JobError | null) ?? null,
    events: eventsFrom(row.events, createdAt),
    createdAt,
    startedAt: new Date(row.started_at_ms),
    finishedAt: null,
  };
}
