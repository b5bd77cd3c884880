import { AssertionError } from "node:assert";
import { type App, AppNotOpen, type Job, type JobStatus, type Task } from "@proc/core";
import { preview } from "./format.js";
import { type ArgsPattern, matches } from "./match.js";

/** A task, or the name of one on an app (a task another process registers, say). */
export type TaskRef<Args> = Task<Args, unknown> | { app: App; name: string };

/** Which jobs of the task count, besides their args. */
export interface DeferredFilter {
  /** @defaultValue "todo": deferred and not run yet (scheduled ones included) */
  status?: JobStatus | readonly JobStatus[];
  queue?: string;
  priority?: number;
  lock?: string | null;
  queueingLock?: string | null;
  /** Scheduled within a second of this instant; `null`: not scheduled (ready at once). */
  scheduledAt?: Date | null;
}

export interface ExpectDeferredOptions extends DeferredFilter {
  /** Exactly this many matching jobs. @defaultValue at least one */
  count?: number;
}

/**
 * The task's jobs that match `args` (a partial pattern, see {@link matches}) and the
 * filter, oldest first. By default only `todo` jobs: deferred, not run yet.
 */
export async function deferredJobs<Args>(
  task: TaskRef<Args>,
  args?: ArgsPattern<Args>,
  filter: DeferredFilter = {},
): Promise<Job<Args>[]> {
  const { jobs } = await lookUp(task, args, filter, deferredJobs);
  return jobs.filter((j) => j.matched).map((j) => j.job as Job<Args>);
}

/**
 * Asserts that the task has a deferred job whose args match `args` (partially: keys you
 * leave out are not compared) and the filter; `count` asks for exactly that many.
 * Resolves with the matching jobs, oldest first. Otherwise throws an `AssertionError`
 * listing what was deferred instead.
 */
export async function expectDeferred<Args>(
  task: TaskRef<Args>,
  args?: ArgsPattern<Args>,
  options: ExpectDeferredOptions = {},
): Promise<Job<Args>[]> {
  const { count, ...filter } = options;
  if (count !== undefined && !(Number.isInteger(count) && count >= 0))
    throw new TypeError(`expectDeferred: count must be an integer >= 0 (got ${String(count)})`);
  const found = await lookUp(task, args, filter, expectDeferred);
  const matched = found.jobs.filter((j) => j.matched).map((j) => j.job as Job<Args>);
  const ok = count === undefined ? matched.length > 0 : matched.length === count;
  if (!ok) {
    const wanted = count === undefined ? "a job" : `${count} job${count === 1 ? "" : "s"}`;
    const got = matched.length === 0 ? "none matched" : `${matched.length} matched (marked ✓)`;
    fail(`Expected ${wanted} of ${found.subject}, but ${got}.\n${await found.report()}`, expectDeferred);
  }
  return matched;
}

/**
 * Asserts that the task has no deferred job whose args match `args` (partially; with no
 * `args`, no deferred job at all) and the filter. Throws an `AssertionError` listing the
 * jobs that match.
 */
export async function expectNotDeferred<Args>(
  task: TaskRef<Args>,
  args?: ArgsPattern<Args>,
  filter: DeferredFilter = {},
): Promise<void> {
  const found = await lookUp(task, args, filter, expectNotDeferred);
  const matched = found.jobs.filter((j) => j.matched);
  if (matched.length)
    fail(
      `Expected no job of ${found.subject}, but ${matched.length} matched (marked ✓).\n${await found.report()}`,
      expectNotDeferred,
    );
}

// ---- internals ---------------------------------------------------------------

const DEFAULT_STATUS: readonly JobStatus[] = ["todo"];
const PAGE = 1000;
/** Lines of jobs a message lists at most. */
const LISTED = 20;

interface Candidate {
  job: Job;
  matched: boolean;
}

async function lookUp(
  task: TaskRef<unknown>,
  args: unknown,
  filter: DeferredFilter,
  caller: (...a: never[]) => unknown,
) {
  if (!task || typeof task !== "object" || typeof task.name !== "string")
    throw new TypeError(`${caller.name}: expected a task (or { app, name }), got ${String(task)}`);
  const app = task.app;
  const name = task.name;
  if (!app?.isOpen) throw new AppNotOpen(`look up the jobs of task ${JSON.stringify(name)}`);
  const statuses: readonly JobStatus[] =
    filter.status === undefined
      ? DEFAULT_STATUS
      : typeof filter.status === "string"
        ? [filter.status]
        : filter.status;

  // Every job of the task in those statuses, oldest first; the filter is applied here so
  // that a message can list the ones that were deferred but did not match.
  const jobs: Job[] = [];
  for (let beforeId: number | undefined; ; ) {
    const page = await app.jobManager.listJobs({ task: name, status: [...statuses], beforeId, limit: PAGE });
    jobs.push(...page);
    if (page.length < PAGE) break;
    beforeId = page.at(-1)!.id;
  }
  jobs.reverse();
  const candidates: Candidate[] = jobs.map((job) => ({
    job,
    matched: passes(job, filter) && (args === undefined || matches(job.args, args)),
  }));

  const conditions = [
    args === undefined ? null : `args matching ${preview(args)}`,
    filter.queue === undefined ? null : `queue ${JSON.stringify(filter.queue)}`,
    filter.priority === undefined ? null : `priority ${filter.priority}`,
    filter.lock === undefined ? null : `lock ${JSON.stringify(filter.lock)}`,
    filter.queueingLock === undefined ? null : `queueing lock ${JSON.stringify(filter.queueingLock)}`,
    filter.scheduledAt === undefined
      ? null
      : filter.scheduledAt === null
        ? "no schedule"
        : `scheduled at ${filter.scheduledAt.toISOString()}`,
  ].filter((c) => c !== null);
  const where = statuses.length === 1 ? statuses[0] : `${statuses.join(" or ")}`;
  const subject = `task ${JSON.stringify(name)} (${where})${conditions.length ? ` with ${conditions.join(", ")}` : ""}`;

  return {
    jobs: candidates,
    subject,
    /** What was deferred: the task's jobs, or else which other tasks have some. */
    async report(): Promise<string> {
      if (candidates.length === 0) {
        const others = (await app.jobManager.listTasks())
          .map((t) => ({ name: t.name, n: statuses.reduce((sum, s) => sum + t[s], 0) }))
          .filter((t) => t.n > 0 && t.name !== name);
        return others.length
          ? `No job of task ${JSON.stringify(name)} is ${where}. Jobs that are: ${others.map((t) => `${t.name} ×${t.n}`).join(", ")}.`
          : `No job at all is ${where}.`;
      }
      const lines = candidates
        .slice(0, LISTED)
        .map(({ job, matched }) => `  ${matched ? "✓" : "-"} ${describe(job)}`);
      if (candidates.length > LISTED) lines.push(`  … and ${candidates.length - LISTED} more`);
      return `Jobs of task ${JSON.stringify(name)} that are ${where} (${candidates.length}):\n${lines.join("\n")}`;
    },
  };
}

function passes(job: Job, filter: DeferredFilter): boolean {
  if (filter.queue !== undefined && job.queue !== filter.queue) return false;
  if (filter.priority !== undefined && job.priority !== filter.priority) return false;
  if (filter.lock !== undefined && job.lock !== filter.lock) return false;
  if (filter.queueingLock !== undefined && job.queueingLock !== filter.queueingLock) return false;
  if (filter.scheduledAt !== undefined) {
    if (filter.scheduledAt === null) return job.scheduledAt === null;
    if (job.scheduledAt === null || Math.abs(job.scheduledAt.getTime() - filter.scheduledAt.getTime()) > 1000)
      return false;
  }
  return true;
}

function describe(job: Job): string {
  const parts = [`job ${job.id}: args ${preview(job.args)}`, `queue ${JSON.stringify(job.queue)}`];
  if (job.status !== "todo") parts.push(job.status);
  if (job.priority !== 0) parts.push(`priority ${job.priority}`);
  if (job.lock !== null) parts.push(`lock ${JSON.stringify(job.lock)}`);
  if (job.queueingLock !== null) parts.push(`queueing lock ${JSON.stringify(job.queueingLock)}`);
  if (job.scheduledAt !== null) parts.push(`scheduled at ${job.scheduledAt.toISOString()}`);
  return parts.join(", ");
}

function fail(message: string, stackStartFn: (...a: never[]) => unknown): never {
  throw new AssertionError({ message, stackStartFn });
}
