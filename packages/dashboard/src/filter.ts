// The jobs filter, one shape for the jobs page (query string), its links and the bulk actions
// (the same fields posted back with the form), and what it asks of JobManager.searchJobs.
import { JOB_STATUSES, type JobStatus, type JsonObject, type SearchJobsFilter } from "@proc/core";

export interface JobsFilter {
  status: JobStatus | null;
  queue: string | null;
  task: string | null;
  lock: string | null;
  queueingLock: string | null;
  /** The worker running the job or that ran its last attempt (its id). */
  worker: number | null;
  /** Created at or after (UTC). */
  from: Date | null;
  /** Created before (UTC). */
  to: Date | null;
  /** Text in the args' JSON; a JSON object instead means "args contain it". */
  search: string | null;
}

/** The query-string names of the filter's fields. */
export const FILTER_FIELDS = [
  "status",
  "queue",
  "task",
  "lock",
  "queueing_lock",
  "worker",
  "from",
  "to",
  "q",
];

const positiveInteger = (text: string | null): number | null => {
  const n = Number(text);
  return text && /^\d+$/.test(text) && Number.isSafeInteger(n) && n > 0 ? n : null;
};

/**
 * A time from the form's datetime-local inputs ("2025-01-31T09:30", read as UTC) or any ISO
 * 8601 text with its own offset; null when empty or unreadable.
 */
export function parseTime(text: string | null): Date | null {
  if (!text) return null;
  const local = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text);
  const date = new Date(local ? `${text}Z` : text);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** The value of a datetime-local input for a UTC time (minutes, or seconds when it has them). */
export function timeInput(date: Date | null): string {
  if (date === null) return "";
  const iso = date.toISOString();
  return iso.slice(0, date.getUTCSeconds() === 0 ? 16 : 19);
}

export function parseFilter(get: (name: string) => string | null | undefined): JobsFilter {
  const text = (name: string) => get(name)?.trim() || null;
  const status = text("status");
  return {
    status: JOB_STATUSES.includes(status as JobStatus) ? (status as JobStatus) : null,
    queue: text("queue"),
    task: text("task"),
    lock: text("lock"),
    queueingLock: text("queueing_lock"),
    worker: positiveInteger(text("worker")),
    from: parseTime(text("from")),
    to: parseTime(text("to")),
    search: text("q"),
  };
}

/** The filter as query-string fields (empty ones left out). */
export function filterParams(f: JobsFilter): Record<string, string | null> {
  return {
    status: f.status,
    queue: f.queue,
    task: f.task,
    lock: f.lock,
    queueing_lock: f.queueingLock,
    worker: f.worker === null ? null : String(f.worker),
    from: f.from ? timeInput(f.from) : null,
    to: f.to ? timeInput(f.to) : null,
    q: f.search,
  };
}

export const isFiltered = (f: JobsFilter): boolean =>
  Object.values(filterParams(f)).some((v) => v !== null && v !== "");

/** A search that is a JSON object matches args containing it (jsonb @>); any other text, by substring. */
function argsSearch(search: string | null): Pick<SearchJobsFilter, "argsText" | "argsContain"> {
  if (search === null) return {};
  if (search.startsWith("{")) {
    try {
      const value: unknown = JSON.parse(search);
      if (value !== null && typeof value === "object" && !Array.isArray(value))
        return { argsContain: value as JsonObject };
    } catch {
      // Not JSON after all: searched as text.
    }
  }
  return { argsText: search };
}

export function searchFilter(f: JobsFilter): SearchJobsFilter {
  return {
    status: f.status,
    queue: f.queue,
    task: f.task,
    lock: f.lock,
    queueingLock: f.queueingLock,
    workerId: f.worker,
    createdFrom: f.from,
    createdBefore: f.to,
    ...argsSearch(f.search),
  };
}
