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

export function jobFromRow(row: JobRow): Job {
  // Both drivers (pg, PGlite) hand jsonb columns over already parsed, into objects of
  // our own: their "at" can be turned into a Date in place.
  const stored = (row.events as Array<Record<string, unknown>> | null) ?? [];
  const createdAt = toDate(row.created_at) as Date;
  // The first entry is not stored (see the events column in schema.sql).
  const events: JobEvent[] = [{ type: "deferred", at: new Date(createdAt.getTime()) }];
  for (const e of stored) {
    e.at = new Date(String(e.at));
    e.type = String(e.type);
    events.push(e as JobEvent);
  }
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
