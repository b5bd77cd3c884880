import { readFileSync } from "node:fs";
import { App, type AppOptions, type Connector, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { PGliteConnector } from "@proc/pglite-connector";
import pg from "pg";
import { inject } from "vitest";
import { type BackendName, backends, pgUrl, withDatabase } from "./backends.js";
import "./provided.js";

export { backends, pgUrl, withDatabase, type BackendName };

export interface TestDatabase {
  backend: BackendName;
  /** A new connector on this database (the caller owns it). */
  connector(): Connector;
  /** For pg: the database's URL (for child processes). */
  url: string | null;
  /** Drop the database. */
  drop(): Promise<void>;
}

let counter = 0;

/** A fresh migrated database cloned from the run's template. */
export async function createTestDatabase(backend: BackendName): Promise<TestDatabase> {
  if (backend === "pglite") {
    const dump = readFileSync(inject("procPgliteTemplate"));
    // One in-process instance per database: PGlite is a single session anyway.
    const instance = new PGliteConnector({ loadDataDir: new Blob([dump]) });
    let handedOut = false;
    return {
      backend,
      url: null,
      connector() {
        if (handedOut) throw new Error("a PGlite test database has one connector; share it");
        handedOut = true;
        return instance;
      },
      async drop() {
        await instance.close();
      },
    };
  }
  const url = pgUrl();
  const template = inject("procPgTemplate");
  if (!url || !template) throw new Error("no Postgres template: is DATABASE_URL set for the whole run?");
  const name = `proc_test_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
  } finally {
    await admin.end();
  }
  const dbUrl = withDatabase(url, name);
  return {
    backend,
    url: dbUrl,
    connector: () => new PgConnector({ connectionString: dbUrl }),
    async drop() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export interface TestApp {
  app: App;
  db: TestDatabase;
  /** Close the app and drop the database. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** An open App on a fresh migrated database of `backend`. */
export async function createTestApp(
  backend: BackendName,
  options: Partial<Omit<AppOptions, "connector">> = {},
): Promise<TestApp> {
  const db = await createTestDatabase(backend);
  const app = new App({ logger: silentLogger, ...options, connector: db.connector() });
  await app.open();
  const dispose = async () => {
    await app.close();
    await db.drop();
  };
  return { app, db, dispose, [Symbol.asyncDispose]: dispose };
}

/** Poll `check` until it returns a truthy value (returned), or throw after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  {
    timeoutMs = 15_000,
    intervalMs = 25,
    what = "condition",
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<Exclude<T, false | null | undefined | 0 | "">> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Exclude<T, false | null | undefined | 0 | "">;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export {
  type LogRecord,
  backdateHeartbeat,
  backdateStart,
  claimOnDeadWorker,
  recordingLogger,
  registerWorker,
  startService,
} from "./fixtures.js";
