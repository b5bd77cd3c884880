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

/**
 * String metadata a job carries from the defer that created it to every run, like a
 * message's headers: `@proc/otel` stores the deferring span's W3C trace context here
 * (`traceparent`, `tracestate`). Set by plugins through `app.interceptDefer`.
 */
export type JobHeaders = Readonly<Record<string, string>>;

/** A rate limit: at most `max` jobs of `key` start in any window of `per` milliseconds. */
export interface RateLimit {
  key: string;
  max: number;
  per: number;
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
  /**
   * The number of the job's current (or last) run: every claim by a worker is a new
   * run (+1; 0 before the first), and unlike `attempts` it never goes back. It fences
   * runs: a worker records a run's outcome only while the job is still doing that run,
   * so a run whose job was recovered elsewhere (or claimed again) can change nothing.
   */
  run: number;
  /** How many times the job was recovered after its worker died. */
  stalledCount: number;
  /** The worker running the job, or that ran its last attempt; null while it waits (todo). */
  workerId: number | null;
  abortRequested: boolean;
  result: JsonValue | null;
  error: JobError | null;
  events: JobEvent[];
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Headers set at defer time (see JobHeaders); null when it has none. */
  headers: JobHeaders | null;
  /** At most `concurrencyLimit` jobs of this key run at once (JobOptions.concurrencyKey). */
  concurrencyKey: string | null;
  concurrencyLimit: number | null;
  /** The job's rate limit (JobOptions.rateLimit), or null. */
  rateLimit: RateLimit | null;
  /** Not started by then, the job ends cancelled (reason "expired") without running. */
  expireAt: Date | null;
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
  run: number;
  stalled_count: number;
  worker_id: string | number | null;
  abort_requested: boolean;
  result: unknown;
  error: unknown;
  events: unknown;
  created_at: Date | string;
  started_at: Date | string | null;
  finished_at: Date | string | null;
  headers?: unknown;
  concurrency_key?: string | null;
  concurrency_limit?: number | null;
  rate_key?: string | null;
  rate_max?: number | null;
  rate_per_ms?: number | null;
  expire_at?: Date | string | null;
}

const toDate = (v: Date | string | null): Date | null =>
  v === null ? null : v instanceof Date ? v : new Date(v);

/**
 * A job's history: its stored events with the ones its columns already say added
 * back (see the events column and derived_events_v1 in schema.sql): first "deferred"
 * at createdAt; last, for a doing or succeeded job, its attempt's "started" (unless
 * the abort request stored it) and, once succeeded, "succeeded" at finishedAt. Both
 * drivers (pg, PGlite) hand jsonb columns over already parsed, into objects of our
 * own: their "at" becomes a Date in place.
 */
function historyOf(
  stored: unknown,
  job: Pick<Job, "status" | "abortRequested" | "workerId" | "createdAt" | "startedAt" | "finishedAt">,
): JobEvent[] {
  const events: JobEvent[] = [{ type: "deferred", at: new Date(job.createdAt.getTime()) }];
  for (const e of (stored as Array<Record<string, unknown>> | null) ?? []) {
    e.at = new Date(String(e.at));
    e.type = String(e.type);
    events.push(e as JobEvent);
  }
  if (job.status !== "doing" && job.status !== "succeeded") return events;
  if (job.startedAt && !job.abortRequested)
    events.push({ type: "started", at: new Date(job.startedAt.getTime()), worker_id: job.workerId });
  if (job.status === "succeeded" && job.finishedAt)
    events.push({ type: "succeeded", at: new Date(job.finishedAt.getTime()) });
  return events;
}

export function jobFromRow(row: JobRow): Job {
  const job: Job = {
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
    run: row.run,
    stalledCount: row.stalled_count,
    workerId: row.worker_id === null ? null : Number(row.worker_id),
    abortRequested: row.abort_requested,
    result: (row.result as JsonValue | undefined) ?? null,
    error: (row.error as JobError | null) ?? null,
    events: [],
    createdAt: toDate(row.created_at) as Date,
    startedAt: toDate(row.started_at),
    finishedAt: toDate(row.finished_at),
    headers: (row.headers as JobHeaders | null | undefined) ?? null,
    concurrencyKey: row.concurrency_key ?? null,
    concurrencyLimit: row.concurrency_limit ?? null,
    rateLimit: row.rate_key ? { key: row.rate_key, max: row.rate_max!, per: row.rate_per_ms! } : null,
    expireAt: toDate(row.expire_at ?? null),
  };
  job.events = historyOf(row.events, job);
  return job;
}

/**
 * A row of fetch_jobs_v4, as the fetch_jobs query sends it: what a worker does not know
 * yet about a job it has just claimed, as one JSON array of values in this order (the
 * column names are not repeated for every job).
 */
export type FetchedJobRow = [
  id: number | null,
  queue: string,
  task: string,
  priority: number,
  lock: string | null,
  queueingLock: string | null,
  args: JsonObject,
  attempts: number,
  run: number,
  stalledCount: number,
  error: JobError | null,
  events: unknown,
  scheduledAtMs: number | null,
  createdAtMs: number,
  startedAtMs: number,
  headers: JobHeaders | null,
  /** The job's limits, or null when it has none; on the last row (id null), ClaimInfo. */
  flow: FetchedJobFlow | null,
];

/** A claimed job's limits (the "flow" column of fetch_jobs_v4). */
interface FetchedJobFlow {
  concurrency_key?: string;
  concurrency_limit?: number;
  rate_key?: string;
  rate_max?: number;
  rate_per_ms?: number;
  expire_at_ms?: number;
}

/** The Job a fetch claimed for `workerId`: doing on that worker, not finished. */
export function fetchedJobFromRow(row: FetchedJobRow, workerId: number): Job {
  const [id, queue, task, priority, lock, queueingLock, args, attempts, run, stalledCount, error] = row;
  const scheduledAtMs = row[12];
  const job: Job = {
    id: id!,
    queue,
    task,
    priority,
    lock,
    queueingLock,
    args,
    status: "doing",
    scheduledAt: scheduledAtMs === null ? null : new Date(scheduledAtMs),
    attempts,
    run,
    stalledCount,
    workerId,
    abortRequested: false,
    result: null,
    error,
    events: [],
    createdAt: new Date(row[13]),
    startedAt: new Date(row[14]),
    finishedAt: null,
    headers: row[15],
    concurrencyKey: null,
    concurrencyLimit: null,
    rateLimit: null,
    expireAt: null,
  };
  const flow = row[16];
  if (flow) {
    job.concurrencyKey = flow.concurrency_key ?? null;
    job.concurrencyLimit = flow.concurrency_limit ?? null;
    if (flow.rate_key) job.rateLimit = { key: flow.rate_key, max: flow.rate_max!, per: flow.rate_per_ms! };
    if (flow.expire_at_ms !== undefined) job.expireAt = new Date(flow.expire_at_ms);
  }
  job.events = historyOf(row[11], job);
  return job;
}
