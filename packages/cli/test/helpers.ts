import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { App, silentLogger } from "@proc/core";
import { afterAll, beforeAll } from "vitest";
import { PgConnector } from "@proc/pg-connector";

export const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
export const FIXTURES = join(PACKAGE_DIR, "test", "fixtures");

const DATABASE_URL = process.env.DATABASE_URL;
/** CI sets PROC_REQUIRE_PG=1: without Postgres the database tests then fail instead of skipping. */
export const skipDb = !DATABASE_URL && process.env.PROC_REQUIRE_PG !== "1";

export interface TestDatabase {
  url: string;
  /** An open app on the database, for arranging and checking state. */
  app: App;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: PgConnector) => Promise<T>): Promise<T> {
  if (!DATABASE_URL) throw new Error("PROC_REQUIRE_PG=1 but DATABASE_URL is not set");
  const connector = new PgConnector({ connectionString: DATABASE_URL });
  await connector.open();
  try {
    return await fn(connector);
  } finally {
    await connector.close();
  }
}

/** A database of its own for a test file (files run in parallel); migrated unless told not to. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `proc_cli_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(DATABASE_URL!);
  url.pathname = `/${name}`;
  const app = new App({
    connector: new PgConnector({ connectionString: url.toString() }),
    logger: silentLogger,
  });
  await app.open();
  if (options.migrate ?? true) await app.migrate();
  return {
    url: url.toString(),
    app,
    async drop() {
      await app.close();
      await admin(async (c) => {
        // pg's Pool.end() resolves before its sockets are closed; terminating them (FORCE) in
        // that window makes the closing client emit an error nobody listens to any more.
        for (let i = 0; i < 50; i++) {
          const [row] = await c.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1",
            [name],
          );
          if (row?.n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      });
    },
  };
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Child {
  /** Resolves when the process exits. */
  done: Promise<Run>;
  /** Resolves once stderr contains `text` (a log line, say). */
  waitForStderr(text: string, timeoutMs?: number): Promise<void>;
  /** What it wrote to stderr so far. */
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Spawns the CLI from source, the way its bin runs once built: tsx compiles the
 * TypeScript and the @proc/source condition resolves workspace packages to their
 * sources, so the tests need no prior build of any package.
 */
export function start(args: readonly string[], env: Record<string, string | undefined> = {}): Child {
  const child = spawn(
    process.execPath,
    ["--conditions=@proc/source", "--import", "tsx", join(PACKAGE_DIR, "src", "bin.ts"), ...args],
    {
      cwd: PACKAGE_DIR,
      env: { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, ...env } as NodeJS.ProcessEnv,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
    for (const check of waiters) check();
  });
  const done = new Promise<Run>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return {
    done,
    kill: (signal) => child.kill(signal),
    stderr: () => stderr,
    waitForStderr(text, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`stderr never contained ${JSON.stringify(text)}; it was:\n${stderr}`));
        }, timeoutMs);
        const check = () => {
          if (!stderr.includes(text)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
        void done.then(() => {
          if (!stderr.includes(text)) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`the CLI exited before stderr contained ${JSON.stringify(text)}:\n${stderr}`));
          }
        });
      });
    },
  };
}

/** Runs the CLI to completion. */
export function proc(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return start(args, env).done;
}

/**
 * A fresh database for the enclosing describe block (created before its tests, dropped
 * after), and the environment that points the CLI at it.
 */
export function useTestDatabase(options: { migrate?: boolean } = {}): {
  db: TestDatabase;
  env: Record<string, string>;
} {
  const fixture = {} as { db: TestDatabase; env: Record<string, string> };
  beforeAll(async () => {
    fixture.db = await createTestDatabase(options);
    fixture.env = { DATABASE_URL: fixture.db.url };
  });
  afterAll(async () => {
    await fixture.db?.drop();
  });
  return fixture;
}
