import { sleep } from "./sleep.js";
import { type App, InvalidOptions, type JobStatus, type WorkerServiceContext } from "@proc/core";

/** An age: ms, or a number with a unit: "30s", "15m", "12h", "7d". null: keep forever. */
export type RetentionAge = number | `${number}${"s" | "m" | "h" | "d"}` | null;

/** How long finished jobs of each status are kept (a status not named is kept forever). */
export interface RetentionRules {
  succeeded?: RetentionAge;
  failed?: RetentionAge;
  cancelled?: RetentionAge;
  aborted?: RetentionAge;
}

export interface RetentionOptions extends RetentionRules {
  /** Rules of some queues; a status a queue does not name follows the rules above. */
  queues?: Record<string, RetentionRules>;
  /** How often each worker deletes what has expired, in ms. @defaultValue 60000 */
  interval?: number;
  /** Most jobs one DELETE statement removes. @defaultValue 1000 */
  batchSize?: number;
}

const STATUSES = ["succeeded", "failed", "cancelled", "aborted"] as const satisfies readonly JobStatus[];
const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** One DELETE pass to repeat: a status, an age, and the queues it covers. */
interface Rule {
  status: JobStatus;
  olderThanMs: number;
  queue: string | null;
  exceptQueues: string[];
}

/** The age in ms, or null to keep forever; a problem is pushed for a bad value. */
function ageMs(path: string, value: RetentionAge | undefined, problems: string[]): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "number") {
    if (Number.isFinite(value) && value >= 0) return value;
  } else if (typeof value === "string") {
    const match = /^(\d+(?:\.\d+)?)([smhd])$/.exec(value);
    if (match) return Number(match[1]) * UNITS[match[2]!]!;
  }
  problems.push(
    `${path}: an age in ms or a string such as "30s", "15m", "12h", "7d", or null to keep forever (got ${JSON.stringify(value)})`,
  );
  return null;
}

/** The DELETE passes the options ask for; throws InvalidOptions naming every bad value. */
export function retentionRules(options: RetentionOptions): {
  rules: Rule[];
  interval: number;
  batchSize: number;
} {
  const problems: string[] = [];
  const known = new Set<string>([...STATUSES, "queues", "interval", "batchSize"]);
  for (const key of Object.keys(options))
    if (!known.has(key)) problems.push(`${key}: unknown; expected ${[...known].join(", ")}`);
  const interval = options.interval ?? 60_000;
  if (!(Number.isInteger(interval) && interval >= 1 && interval <= 2_147_483_647))
    problems.push(`interval: ms between 1 and 2147483647 (got ${String(interval)})`);
  const batchSize = options.batchSize ?? 1000;
  if (!(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= 100_000))
    problems.push(`batchSize: an integer from 1 to 100000 (got ${String(batchSize)})`);
  const queues = Object.entries(options.queues ?? {});
  const rules: Rule[] = [];
  for (const status of STATUSES) {
    // Queues with their own rule for this status are left out of the global pass.
    const own = queues.filter(([, r]) => r !== null && typeof r === "object" && status in r).map(([q]) => q);
    const global = ageMs(status, options[status], problems);
    if (global !== null) rules.push({ status, olderThanMs: global, queue: null, exceptQueues: own });
    for (const [queue, r] of queues) {
      if (!(status in r)) continue;
      const ms = ageMs(`queues.${queue}.${status}`, r[status], problems);
      if (ms !== null) rules.push({ status, olderThanMs: ms, queue, exceptQueues: [] });
    }
  }
  for (const [queue, r] of queues)
    for (const key of Object.keys(r ?? {}))
      if (!(STATUSES as readonly string[]).includes(key))
        problems.push(`queues.${queue}.${key}: unknown status; expected ${STATUSES.join(", ")}`);
  if (problems.length) throw new InvalidOptions("scheduler retention", problems);
  return { rules, interval, batchSize };
}

/**
 * One retention pass now (what the service does every `interval`), e.g. from a script or a
 * test: every rule, in bounded DELETE statements. Returns how many jobs it deleted, by status.
 */
export function deleteExpiredJobs(
  app: App,
  options: RetentionOptions,
): Promise<Partial<Record<JobStatus, number>>> {
  const { rules, batchSize } = retentionRules(options);
  return deletePass(app, rules, batchSize);
}

async function deletePass(
  app: App,
  rules: readonly Rule[],
  batchSize: number,
  signal?: AbortSignal,
): Promise<Partial<Record<JobStatus, number>>> {
  const deleted: Partial<Record<JobStatus, number>> = {};
  for (const rule of rules) {
    for (;;) {
      if (signal?.aborted) return deleted;
      const count = await app.jobManager.deleteFinishedJobs({ ...rule, limit: batchSize });
      deleted[rule.status] = (deleted[rule.status] ?? 0) + count;
      if (count < batchSize) break;
      // Let the app's other work (fetches, outcomes) between two batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return deleted;
}

/** The worker service: a pass every `interval` (each worker runs one; they share the work). */
export async function runRetention(
  ctx: WorkerServiceContext,
  rules: readonly Rule[],
  interval: number,
  batchSize: number,
): Promise<void> {
  while (!ctx.signal.aborted) {
    try {
      const deleted = await deletePass(ctx.app, rules, batchSize, ctx.signal);
      const total = Object.values(deleted).reduce((a, b) => a + (b ?? 0), 0);
      if (total > 0)
        ctx.logger.info({ action: "retention_deleted", deleted }, `retention deleted ${total} finished jobs`);
    } catch (error) {
      if (ctx.signal.aborted) return;
      ctx.logger.error({ action: "retention_error", error }, "retention could not delete expired jobs");
    }
    await (ctx.sleep ? ctx.sleep(interval) : sleep(interval, ctx.signal));
  }
}
