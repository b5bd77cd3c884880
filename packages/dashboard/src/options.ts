import { randomBytes } from "node:crypto";
import { InvalidOptions } from "@proc/core";

/** What a mutating request asks to do to one job. */
export type DashboardAction = "retry" | "cancel" | "abort" | "delete";
export const ACTIONS: readonly DashboardAction[] = ["retry", "cancel", "abort", "delete"];

/** A bulk action of the jobs page: what to do, to the selected jobs or to every job of the filter. */
export type BulkAction = `${"retry" | "cancel" | "delete"}:${"selected" | "filter"}`;
export const BULK_ACTIONS: readonly BulkAction[] = [
  "retry:selected",
  "cancel:selected",
  "delete:selected",
  "retry:filter",
  "cancel:filter",
  "delete:filter",
];

/**
 * A periodic schedule, as `app.periodic()` (@proc/scheduler) returns it: the dashboard shows
 * its cron, time zone and next tick beside what the database deferred.
 */
export interface PeriodicSchedule {
  readonly taskName: string;
  readonly periodicId: string;
  readonly cron: string;
  readonly timezone: string;
  nextTick(after?: Date): Date;
}

export interface DashboardOptions {
  /**
   * The path the dashboard is mounted at, as the browser sees it ("/", "/admin/jobs"): every
   * route and link is under it.
   * @defaultValue "/"
   */
  basePath?: string;
  /**
   * Allow retry, cancel, abort and delete. Needs `token` or `authorize` (or both: then both
   * must pass). Off: the dashboard is read-only, shows no action and refuses every POST.
   * @defaultValue false
   */
  actions?: boolean;
  /**
   * A shared secret every action must carry: the `token` form field, an
   * `Authorization: Bearer <token>` header or an `X-Proc-Dashboard-Token` header.
   */
  token?: string;
  /** The host app's own check, asked before every action (its session, its roles). */
  authorize?: (request: Request, action: DashboardAction) => boolean | Promise<boolean>;
  /**
   * The key that signs the CSRF tokens of the action forms. Give every instance the same one
   * when several serve the dashboard behind a load balancer.
   * @defaultValue random bytes, new in every process
   */
  secret?: string;
  /** Jobs per page of the jobs list (1 to 500). @defaultValue 50 */
  pageSize?: number;
  /**
   * While a browser watches live, how often (ms) an activity signature is read to catch changes no
   * NOTIFY announces (a job starting) and everything when LISTEN is down. @defaultValue 1000
   */
  pollInterval?: number;
  /**
   * The periodic schedules to show (the handles `app.periodic()` returns), with their cron,
   * time zone and next tick. By default, every schedule of the app's scheduler
   * (@proc/scheduler), read at each request. The page also lists every schedule the database
   * has deferred a job for, with its last tick and job.
   * @defaultValue the app's schedules
   */
  periodic?: readonly PeriodicSchedule[];
}

export interface ResolvedOptions {
  basePath: string;
  actions: boolean;
  token: string | null;
  authorize: NonNullable<DashboardOptions["authorize"]> | null;
  secret: Buffer;
  pageSize: number;
  pollInterval: number;
  /** null: the app's own, read at each request (appSchedules). */
  periodic: readonly PeriodicSchedule[] | null;
}

/** Every bad option reported in one InvalidOptions. */
export function resolveOptions(options: DashboardOptions = {}): ResolvedOptions {
  const problems: string[] = [];
  const base = options.basePath ?? "/";
  if (typeof base !== "string" || !base.startsWith("/") || /[?#\s]/.test(base))
    problems.push(`basePath: a path starting with "/" without ? or #, got ${JSON.stringify(base)}`);
  if (options.token !== undefined && (typeof options.token !== "string" || options.token.length < 16))
    problems.push("token: a string of at least 16 characters (e.g. `openssl rand -hex 32`)");
  if (options.authorize !== undefined && typeof options.authorize !== "function")
    problems.push("authorize: a function (request, action) => boolean | Promise<boolean>");
  if (options.actions && options.token === undefined && options.authorize === undefined)
    problems.push(
      "actions: true needs `token` or `authorize`, so that not everyone who can reach it can act",
    );
  if (options.secret !== undefined && (typeof options.secret !== "string" || options.secret.length < 16))
    problems.push("secret: a string of at least 16 characters");
  const pageSize = options.pageSize ?? 50;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 500)
    problems.push(`pageSize: an integer from 1 to 500, got ${pageSize}`);
  const pollInterval = options.pollInterval ?? 1000;
  if (!Number.isFinite(pollInterval) || pollInterval < 100 || pollInterval > 2_147_483_647)
    problems.push(`pollInterval: milliseconds, at least 100, got ${pollInterval}`);
  const periodic = options.periodic ?? null;
  if (
    periodic !== null &&
    (!Array.isArray(periodic) ||
      periodic.some((p) => typeof p?.taskName !== "string" || typeof p?.nextTick !== "function"))
  )
    problems.push("periodic: an array of the handles app.periodic() returns");
  if (problems.length) throw new InvalidOptions("createDashboard", problems);
  return {
    basePath: typeof base === "string" ? base.replace(/\/+$/, "") : "",
    actions: options.actions ?? false,
    token: options.token ?? null,
    authorize: options.authorize ?? null,
    secret: options.secret === undefined ? randomBytes(32) : Buffer.from(options.secret),
    pageSize,
    pollInterval,
    periodic,
  };
}

/**
 * The schedules of the app's scheduler: `app.use(scheduler())` (@proc/scheduler) adds
 * `periodicSchedules()` to the app. Looked up by shape, so that the dashboard needs no
 * dependency on the scheduler; none without it.
 */
export function appSchedules(app: object): readonly PeriodicSchedule[] {
  const list = (app as { periodicSchedules?: () => readonly PeriodicSchedule[] }).periodicSchedules;
  return typeof list === "function" ? list.call(app) : [];
}
