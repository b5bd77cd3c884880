/**
 * The PgBouncer suite's gate: the throwaway PgBouncer itself is @proc/fixtures/pgbouncer's,
 * shared with the benchmark.
 */
import { pgBouncerVersion } from "@proc/fixtures/pgbouncer";

export { type PgBouncer, type PoolMode, startPgBouncer } from "@proc/fixtures/pgbouncer";

/** What a run without the binary is told, in one line: what is missing and how to get it. */
export const PGBOUNCER_MISSING =
  "the PgBouncer suite needs the pgbouncer binary, which is not on PATH: apt-get install -y pgbouncer";

/**
 * Whether the PgBouncer suite can run, decided before anything starts: without the
 * binary it is skipped with one line saying what to install or, with PROC_REQUIRE_PG=1
 * (CI, where skipping would hide the suite), fails with that line alone.
 */
export function pgBouncerSuiteEnabled(): boolean {
  if (pgBouncerVersion() !== null) return true;
  if (process.env.PROC_REQUIRE_PG === "1") {
    const error = new Error(`PROC_REQUIRE_PG=1 but ${PGBOUNCER_MISSING}`);
    // The stack would only point here, and vitest would print it under the message.
    error.stack = `${error.name}: ${error.message}`;
    throw error;
  }
  process.stderr.write(`skipped: ${PGBOUNCER_MISSING}\n`);
  return false;
}
