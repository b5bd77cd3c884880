import { ConnectionError, ConnectorError, InvalidOptions, UniqueViolation } from "@proc/core";
import { Pool } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgConnector } from "../src/index.js";
import { createTestDatabase, memoryLogger, skipPg, type TestDatabase, waitFor } from "./helpers.js";

describe.skipIf(skipPg)("PgConnector", () => {
  let db: TestDatabase;
  let connector: PgConnector;

  beforeAll(async () => {
    db = await createTestDatabase();
    connector = new PgConnector({ connectionString: db.url });
    await connector.open();
    await connector.query(
      "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL CONSTRAINT items_name_key UNIQUE)",
    );
  });

  afterAll(async () => {
    await connector?.close();
    await db?.drop();
  });

  it("runs a query with parameters and returns rows", async () => {
    const rows = await connector.query<{ sum: number; label: string }>(
      "SELECT $1::int + $2::int AS sum, $3 AS label",
      [2, 3, "x"],
    );
    expect(rows).toEqual([{ sum: 5, label: "x" }]);
  });

  it("runs a parameterless text of several statements and returns the last one's rows", async () => {
    const rows = await connector.query(
      "CREATE TEMP TABLE scratch (n int); INSERT INTO scratch VALUES (7); SELECT 1 AS one",
    );
    expect(rows).toEqual([{ one: 1 }]);
  });

  it("translates a unique violation into UniqueViolation with the constraint name", async () => {
    await connector.query("INSERT INTO items (name) VALUES ($1)", ["dup"]);
    const error = await connector
      .query("INSERT INTO items (name) VALUES ($1)", ["dup"])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UniqueViolation);
    expect((error as UniqueViolation).constraint).toBe("items_name_key");
    expect((error as UniqueViolation).detail).toContain("dup");
  });

  it("translates other server errors into ConnectorError with the SQLSTATE", async () => {
    const error = await connector.query("SELECT * FROM no_such_table").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).sqlState).toBe("42P01");
  });

  it("commits a transaction", async () => {
    const result = await connector.transaction(async (tx) => {
      await tx.query("INSERT INTO items (name) VALUES ($1)", ["committed"]);
      return "done";
    });
    expect(result).toBe("done");
    expect(await connector.query("SELECT name FROM items WHERE name = $1", ["committed"])).toHaveLength(1);
  });

  it("rolls a transaction back when fn throws, rethrowing the caller's error as is", async () => {
    const mine = new Error("task failed");
    const error = await connector
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["rolled-back"]);
        throw mine;
      })
      .catch((e: unknown) => e);
    expect(error).toBe(mine);
    expect(await connector.query("SELECT name FROM items WHERE name = $1", ["rolled-back"])).toHaveLength(0);
  });

  it("translates errors inside a transaction and rolls back", async () => {
    await connector.query("INSERT INTO items (name) VALUES ($1)", ["taken"]);
    const error = await connector
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["tx-first"]);
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["taken"]);
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UniqueViolation);
    expect(await connector.query("SELECT name FROM items WHERE name = $1", ["tx-first"])).toHaveLength(0);
  });

  it("refuses to report a commit when a swallowed error aborted the transaction", async () => {
    const error = await connector
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["swallowed"]);
        await tx.query("SELECT 1 / 0").catch(() => {});
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).sqlState).toBe("25P02");
    expect(await connector.query("SELECT name FROM items WHERE name = $1", ["swallowed"])).toHaveLength(0);
  });

  it("refuses a transaction's queryable once the transaction is over", async () => {
    let leaked: { query: (sql: string) => Promise<unknown> } | undefined;
    await connector.transaction(async (tx) => {
      leaked = tx;
    });
    await expect(leaked!.query("SELECT 1")).rejects.toThrow(/transaction is over/);
  });

  it("discards a connection that broke inside a transaction and keeps working", async () => {
    const error = await connector
      .transaction(async (tx) => {
        await tx.query("SELECT pg_terminate_backend(pg_backend_pid())");
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    for (let i = 0; i < 3; i++) expect(await connector.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });

  it("wraps a caller's own pg transaction, translating errors, and honours its rollback", async () => {
    const pool = new Pool({ connectionString: db.url, max: 1 });
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const q = connector.wrapConnection(client);
      await q.query("INSERT INTO items (name) VALUES ($1)", ["callers-tx"]);
      expect(await q.query("SELECT name FROM items WHERE name = $1", ["callers-tx"])).toHaveLength(1);
      const error = await q.query("INSERT INTO items (name) VALUES ($1)", ["dup"]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UniqueViolation);
      await client.query("ROLLBACK");
    } finally {
      client.release();
      await pool.end();
    }
    expect(await connector.query("SELECT name FROM items WHERE name = $1", ["callers-tx"])).toHaveLength(0);
  });

  it("uses a pool the user passes and never ends it, however often close() is called", async () => {
    const pool = new Pool({ connectionString: db.url, max: 2 });
    try {
      const mine = new PgConnector({ pool });
      await mine.open();
      await mine.open();
      expect(await mine.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
      await Promise.all([mine.close(), mine.close()]);
      await mine.close();
      expect(pool.ended).toBe(false);
      expect((await pool.query("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
      await expect(mine.query("SELECT 1")).rejects.toThrow(/not open/);
    } finally {
      await pool.end();
    }
  });

  it("ends the pool it owns and its listeners on close, idempotently", async () => {
    const owned = new PgConnector({
      connectionString: db.url,
      poolConfig: { application_name: "proc-owned" },
    });
    await owned.open();
    await owned.query("SELECT 1");
    await owned.listen({ channels: ["owned"], onNotification: () => {} });
    const connections = async () =>
      (
        await db.admin(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'proc-owned'",
        )
      )[0]?.n;
    expect(await connections()).toBe(2);
    await Promise.all([owned.close(), owned.close()]);
    await owned.close();
    await waitFor(async () => (await connections()) === 0);
  });

  it("survives an idle client's error (pool 'error' event) and logs it as pool_error", async () => {
    const logger = memoryLogger();
    const c = new PgConnector({ connectionString: db.url, logger, poolConfig: { max: 1 } });
    await c.open();
    try {
      const [row] = await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      // The pool's only client is now idle; killing its backend makes the pool emit "error".
      await db.admin("SELECT pg_terminate_backend($1)", [row!.pid]);
      await waitFor(() => logger.lines.some((l) => l.obj.action === "pool_error"));
      expect(await c.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
    } finally {
      await c.close();
    }
  });

  it("fails to open an unreachable server with a ConnectionError naming host:port, without the password", async () => {
    const c = new PgConnector({ connectionString: "postgres://proc_user:s3cret-pw@127.0.0.1:1/proc" });
    const error = await c.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    const message = (error as Error).message;
    expect(message).toContain("127.0.0.1:1");
    expect(message).toMatch(/ECONNREFUSED/);
    expect(message).not.toContain("s3cret-pw");
    await c.close();
  });

  it("reports every bad option at once", async () => {
    const pool = new Pool();
    const error = (() => {
      try {
        return new PgConnector({
          pool,
          connectionString: "postgres://x/y",
          listenReconnect: { initialDelayMs: -1 },
        });
      } catch (e) {
        return e;
      }
    })();
    await pool.end();
    expect(error).toBeInstanceOf(InvalidOptions);
    expect((error as InvalidOptions).problems).toHaveLength(2);
  });
});
