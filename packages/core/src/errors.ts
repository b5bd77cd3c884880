/**
 * proc's error hierarchy. Every error carries a stable `code` and is recognised by
 * `name`/`code` even across two copies of the package (use {@link isProcError}, not
 * `instanceof`, when that matters). Messages name the problem and the fix.
 */

export type ProcErrorCode =
  | "ALREADY_ENQUEUED"
  | "TASK_NOT_FOUND"
  | "DUPLICATE_TASK"
  | "APP_NOT_OPEN"
  | "INVALID_ARGS"
  | "INVALID_OPTIONS"
  | "JOB_NOT_FOUND"
  | "WAIT_TIMEOUT"
  | "SCHEMA_MISSING"
  | "SCHEMA_OUTDATED"
  | "SCHEMA_TOO_NEW"
  | "CONNECTOR_ERROR"
  | "CONNECTION_ERROR"
  | "UNIQUE_VIOLATION"
  | "UNSUPPORTED_RUNTIME";

// Symbol.for is shared by every copy of this package in a process, so errors from
// another copy (two versions in node_modules) are still recognised.
const BRAND = Symbol.for("proc.error");

export class ProcError extends Error {
  readonly code: ProcErrorCode;
  readonly [BRAND] = true;
  constructor(code: ProcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export function isProcError(error: unknown, code?: ProcErrorCode): error is ProcError {
  if (typeof error !== "object" || error === null || !(BRAND in error)) return false;
  return code === undefined || (error as ProcError).code === code;
}

/** The JavaScript runtime lacks a feature proc relies on (Node.js older than `engines.node`). */
export class UnsupportedRuntime extends ProcError {
  readonly missing: readonly string[];
  constructor(missing: readonly string[], version: string) {
    super(
      "UNSUPPORTED_RUNTIME",
      `proc needs Node.js 20.4 or newer; this runtime (${version}) lacks ${missing.join(", ")}. Upgrade Node.js`,
    );
    this.missing = missing;
  }
}

/** A job with this queueing lock is already waiting (`todo`). */
export class AlreadyEnqueued extends ProcError {
  readonly queueingLock: string | null;
  /** True when refused by the throttle window (uniqueFor), not by a waiting job. */
  readonly throttled: boolean;
  constructor(queueingLock: string | null, options?: { cause?: unknown; throttled?: boolean }) {
    super(
      "ALREADY_ENQUEUED",
      options?.throttled
        ? `a job with queueing lock ${JSON.stringify(queueingLock)} started within its uniqueFor window; ` +
            "defer again once the window has passed, or catch AlreadyEnqueued to skip"
        : `a job with queueing lock ${JSON.stringify(queueingLock)} is already waiting (todo); ` +
            "defer again once it has started, or catch AlreadyEnqueued to skip",
      options,
    );
    this.queueingLock = queueingLock;
    this.throttled = options?.throttled ?? false;
  }
}

export class TaskNotFound extends ProcError {
  readonly taskName: string;
  constructor(taskName: string, known: readonly string[] = []) {
    const hint = known.length ? ` Registered tasks: ${known.slice(0, 10).join(", ")}.` : "";
    super(
      "TASK_NOT_FOUND",
      `no task named ${JSON.stringify(taskName)} is registered on this app.${hint} ` +
        "Register it with app.task(), or defer by name with app.configureTask(name, { allowUnknown: true })",
    );
    this.taskName = taskName;
  }
}

export class DuplicateTask extends ProcError {
  readonly taskName: string;
  constructor(taskName: string) {
    super(
      "DUPLICATE_TASK",
      `a task named ${JSON.stringify(taskName)} is already registered; give each task a unique name (or a blueprint namespace)`,
    );
    this.taskName = taskName;
  }
}

export class AppNotOpen extends ProcError {
  constructor(action: string) {
    super("APP_NOT_OPEN", `cannot ${action}: the app is not open; call await app.open() first`);
  }
}

/** Bad job input (args, names, schedule): nothing was written. */
export class InvalidArgs extends ProcError {
  readonly issues: readonly string[];
  constructor(message: string, issues: readonly string[] = [], options?: { cause?: unknown }) {
    super("INVALID_ARGS", message, options);
    this.issues = issues;
  }
}

/** Bad options: every problem is listed, each naming the option. */
export class InvalidOptions extends ProcError {
  readonly problems: readonly string[];
  constructor(where: string, problems: readonly string[]) {
    super("INVALID_OPTIONS", `invalid ${where} options:\n  - ${problems.join("\n  - ")}`);
    this.problems = problems;
  }
}

export class JobNotFound extends ProcError {
  readonly jobId: number;
  constructor(jobId: number) {
    super("JOB_NOT_FOUND", `no job with id ${jobId}`);
    this.jobId = jobId;
  }
}

export class WaitTimeout extends ProcError {
  readonly jobId: number;
  constructor(jobId: number, timeoutMs: number) {
    super("WAIT_TIMEOUT", `job ${jobId} did not finish within ${timeoutMs} ms`);
    this.jobId = jobId;
  }
}

export class SchemaMissing extends ProcError {
  readonly schema: string;
  constructor(schema: string) {
    super(
      "SCHEMA_MISSING",
      `the proc schema "${schema}" is not installed in this database; run \`proc schema apply\` or await app.migrate()`,
    );
    this.schema = schema;
  }
}

export class SchemaOutdated extends ProcError {
  readonly pending: readonly number[];
  constructor(schema: string, pending: readonly number[]) {
    super(
      "SCHEMA_OUTDATED",
      `the proc schema "${schema}" lacks migration(s) ${pending.join(", ")}; run \`proc schema apply\` or await app.migrate()`,
    );
    this.pending = pending;
  }
}

export class SchemaTooNew extends ProcError {
  readonly databaseVersion: number;
  readonly codeVersion: number;
  constructor(schema: string, databaseVersion: number, codeVersion: number) {
    super(
      "SCHEMA_TOO_NEW",
      `the proc schema "${schema}" is at migration ${databaseVersion} but this code knows only up to ${codeVersion}; ` +
        "upgrade the @proc packages of this process",
    );
    this.databaseVersion = databaseVersion;
    this.codeVersion = codeVersion;
  }
}

/** A database error, translated by a connector. `sqlState` is Postgres' SQLSTATE. */
export class ConnectorError extends ProcError {
  readonly sqlState: string | undefined;
  constructor(message: string, options?: { cause?: unknown; sqlState?: string; code?: ProcErrorCode }) {
    super(options?.code ?? "CONNECTOR_ERROR", message, options);
    this.sqlState = options?.sqlState;
  }
}

/** The database could not be reached, or the connection was lost mid-query. */
export class ConnectionError extends ConnectorError {
  constructor(message: string, options?: { cause?: unknown; sqlState?: string }) {
    super(message, { ...options, code: "CONNECTION_ERROR" });
  }
}

/** A unique constraint or index was violated (SQLSTATE 23505). */
export class UniqueViolation extends ConnectorError {
  readonly constraint: string | undefined;
  readonly detail: string | undefined;
  constructor(message: string, options: { cause?: unknown; constraint?: string; detail?: string }) {
    super(message, { ...options, sqlState: "23505", code: "UNIQUE_VIOLATION" });
    this.constraint = options.constraint;
    this.detail = options.detail;
  }
}

/**
 * SQLSTATEs of a statement that may well succeed if simply run again: a serialization
 * failure or deadlock (40001, 40P01), a lock or statement timeout (55P03, 57014), and
 * the server being short of resources (class 53). Connection errors are transient too.
 */
const TRANSIENT_SQLSTATES = ["40001", "40P01", "55P03", "57014", "53"];

/**
 * Whether `error` says nothing about the statement itself (the connection dropped, a
 * lock wait timed out, ...), so that running it again later is right. Any other error
 * from the database (a data exception, a constraint, a raised exception) will recur
 * and must be dealt with, not retried.
 */
export function isTransientError(error: unknown): boolean {
  if (isProcError(error, "CONNECTION_ERROR")) return true;
  const sqlState = isProcError(error) ? (error as ConnectorError).sqlState : undefined;
  return sqlState !== undefined && TRANSIENT_SQLSTATES.some((s) => sqlState.startsWith(s));
}

/** SQLSTATE classes that mean the connection or server went away, not the query. */
const CONNECTION_SQLSTATE_PREFIXES = ["08", "57P01", "57P02", "57P03", "53300"];

/** Translate a driver error (pg, PGlite) into the hierarchy above. Used by connectors. */
export function translateDriverError(error: unknown): Error {
  if (error instanceof ProcError) return error;
  if (!(error instanceof Error)) return new ConnectorError(String(error), { cause: error });
  const e = error as Error & { code?: unknown; constraint?: unknown; detail?: unknown };
  const sqlState = typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  if (sqlState === "23505") {
    return new UniqueViolation(e.message, {
      cause: error,
      constraint: typeof e.constraint === "string" ? e.constraint : undefined,
      detail: typeof e.detail === "string" ? e.detail : undefined,
    });
  }
  if (
    (sqlState && CONNECTION_SQLSTATE_PREFIXES.some((p) => sqlState.startsWith(p))) ||
    (!sqlState && isNetworkError(e))
  ) {
    return new ConnectionError(redact(e.message), { cause: error, sqlState });
  }
  return new ConnectorError(e.message, { cause: error, sqlState });
}

function isNetworkError(e: Error & { code?: unknown }): boolean {
  const code = typeof e.code === "string" ? e.code : "";
  return (
    ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "EAI_AGAIN"].includes(
      code,
    ) ||
    /Connection terminated|connection (?:is )?closed|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
      e.message,
    )
  );
}

/** Remove passwords from connection strings that may appear in messages. */
export function redact(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]+@/gi, "$1***@");
}
