// Plumbing shared by the examples' main processes: the timeline, the throwaway
// database, waiting. Nothing here is proc-specific.
import { randomBytes } from "node:crypto";
import pg from "pg";

const t0 = Date.now();

/** Seconds since the example started, for a moment given as a Date or epoch ms (default: now). */
export function rel(at: Date | number = Date.now()): string {
  const seconds = ((typeof at === "number" ? at : at.getTime()) - t0) / 1000;
  return `+${seconds.toFixed(2).padStart(6)}s`;
}

/** One timeline line: `[+  1.23s] message`. */
export function log(message: string): void {
  console.log(`[${rel()}] ${message}`);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns something truthy; throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  { timeoutMs = 10_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * DATABASE_URL, or: exit 1 when PROC_REQUIRE_PG=1 (CI), else print one "skipped" line
 * and exit 0, so that `turbo run test` passes on a machine without Postgres.
 */
export function databaseUrlOrSkip(): string {
  const url = process.env.DATABASE_URL;
  if (url) return url;
  if (process.env.PROC_REQUIRE_PG === "1") {
    console.error("error: PROC_REQUIRE_PG=1 but DATABASE_URL is not set");
    process.exit(1);
  }
  console.log(
    "skipped: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run this example",
  );
  process.exit(0);
}

export interface ExampleDatabase {
  name: string;
  /** DATABASE_URL pointing at the new database. */
  url: string;
  /** DROP DATABASE ... WITH (FORCE): also ends connections left over by killed workers. */
  drop(): Promise<void>;
}

/** CREATE DATABASE proc_example_<name>_<random> on the server of `adminUrl`. */
export async function createDatabase(adminUrl: string, name: string): Promise<ExampleDatabase> {
  const dbName = `proc_example_${name}_${randomBytes(4).toString("hex")}`;
  await adminQuery(adminUrl, `CREATE DATABASE "${dbName}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  let dropping: Promise<void> | undefined;
  return {
    name: dbName,
    url: url.toString(),
    drop() {
      dropping ??= adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
      return dropping;
    },
  };
}

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Collects failed checks; the example exits 1 if any failed. */
export class Checks {
  readonly failures: string[] = [];

  check(ok: boolean, description: string): boolean {
    log(`${ok ? "✔" : "✘"} ${description}`);
    if (!ok) this.failures.push(description);
    return ok;
  }

  get passed(): boolean {
    return this.failures.length === 0;
  }
}

/**
 * One example run around its throwaway database: on SIGINT/SIGTERM it calls
 * `onInterrupt` (e.g. kill the workers), drops the database and exits 130; it records
 * errors, and at the end reports the checks and exits 0 or 1.
 */
export class ExampleRun {
  readonly checks = new Checks();
  #interrupted = false;
  #failed = false;

  constructor(
    readonly name: string,
    readonly db: ExampleDatabase,
    onInterrupt: () => void = () => {},
  ) {
    for (const signal of ["SIGINT", "SIGTERM"] as const)
      process.once(signal, () => {
        this.#interrupted = true;
        log(`${signal}: stopping and dropping the database`);
        onInterrupt();
        void db.drop().finally(() => {
          log(`dropped database ${db.name}; interrupted`);
          process.exit(130);
        });
      });
  }

  get interrupted(): boolean {
    return this.#interrupted;
  }

  /** The run failed with `error` (not logged when it comes from an interruption). */
  fail(error: unknown): void {
    this.#failed = true;
    if (!this.#interrupted)
      log(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }

  async dropDatabase(): Promise<void> {
    await this.db.drop().catch((error) => log(`could not drop ${this.db.name}: ${String(error)}`));
    log(`dropped database ${this.db.name}`);
  }

  /** Print the verdict and exit: 0 when every check passed, 1 otherwise, 130 if interrupted. */
  exit(): never {
    const ok = !this.#failed && this.checks.passed;
    console.log(
      this.#interrupted
        ? "\ninterrupted."
        : ok
          ? `\n${this.name}: all checks passed.`
          : `\n${this.name}: FAILED (${this.checks.failures.join("; ") || "error"})`,
    );
    process.exit(this.#interrupted ? 130 : ok ? 0 : 1);
  }
}
