import { randomBytes } from "node:crypto";
import type { Logger } from "@proc/core";
import { Client, escapeIdentifier } from "pg";

export const DATABASE_URL = process.env.DATABASE_URL;
/** CI sets PROC_REQUIRE_PG=1: a missing or unreachable server then fails instead of skipping. */
export const skipPg = !DATABASE_URL && process.env.PROC_REQUIRE_PG !== "1";

export interface TestDatabase {
  url: string;
  /** Runs SQL on a separate admin connection (terminating backends, inspecting activity). */
  admin(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  drop(): Promise<void>;
}

/** A fresh database per test file, so files can run in parallel and leave nothing behind. */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (!DATABASE_URL) throw new Error("DATABASE_URL is not set, but PROC_REQUIRE_PG=1 requires Postgres");
  const name = `proc_test_pg_${randomBytes(6).toString("hex")}`;
  const admin = new Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${escapeIdentifier(name)}`);
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    admin: async (sql, params) => (await admin.query(sql, params)).rows,
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(name)} WITH (FORCE)`);
      await admin.end();
    },
  };
}

export interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

export function memoryLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const at = (level: string) => (obj: Record<string, unknown>, msg?: string) => {
    lines.push({ level, obj, msg });
  };
  const logger = {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

/** Polls a condition; for waiting on asynchronous effects, not for measuring time. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
