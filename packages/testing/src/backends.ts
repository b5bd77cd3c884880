/**
 * Which databases the contract suites run against: PGlite always; real Postgres
 * when DATABASE_URL is set. With PROC_REQUIRE_PG=1 (CI), a missing or unreachable
 * Postgres fails the run instead of silently skipping half the suite.
 */
export type BackendName = "pglite" | "pg";

export function pgUrl(): string | null {
  const url = process.env.DATABASE_URL;
  if (!url && process.env.PROC_REQUIRE_PG === "1")
    throw new Error("PROC_REQUIRE_PG=1 but DATABASE_URL is not set: the real-Postgres tests cannot run");
  return url || null;
}

export function backends(): BackendName[] {
  return pgUrl() ? ["pglite", "pg"] : ["pglite"];
}

/** The same server as `url`, another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
