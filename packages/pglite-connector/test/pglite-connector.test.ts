import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import {
  ConnectionError,
  ConnectorError,
  InvalidOptions,
  type Logger,
  type Notification,
  UniqueViolation,
} from "@proc/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PGliteConnector } from "../src/index.js";

const SCHEMA =
  "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL CONSTRAINT items_name_key UNIQUE)";

function memoryLogger(): Logger & { actions: unknown[] } {
  const actions: unknown[] = [];
  const at = (obj: Record<string, unknown>) => {
    actions.push(obj.action);
  };
  const logger = { actions, debug: at, info: at, warn: at, error: at, child: () => logger };
  return logger;
}

/** Lets queued microtasks and timers run: PGlite delivers notifications from a microtask. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

describe("PGliteConnector", () => {
  let template: File | Blob;
  let c: PGliteConnector;

  beforeAll(async () => {
    // initdb once (seconds), then every other instance starts from the dump (about one second).
    const base = new PGliteConnector();
    await base.open();
    await base.query(SCHEMA);
    template = await base.dumpDataDir();
    await base.close();
    c = new PGliteConnector({ loadDataDir: template });
    await c.open();
  });

  afterAll(async () => {
    await c?.close();
  });

  it("runs a query with parameters and returns rows", async () => {
    const rows = await c.query("SELECT $1::int + $2::int AS sum, $3 AS label, '{\"a\":1}'::jsonb AS doc", [
      2,
      3,
      "x",
    ]);
    expect(rows).toEqual([{ sum: 5, label: "x", doc: { a: 1 } }]);
  });

  it("runs a parameterless text of several statements and returns the last one's rows", async () => {
    const rows = await c.query(
      "CREATE TABLE scratch (n int); INSERT INTO scratch VALUES (7); SELECT n FROM scratch",
    );
    expect(rows).toEqual([{ n: 7 }]);
  });

  it("translates a unique violation into UniqueViolation with the constraint name", async () => {
    await c.query("INSERT INTO items (name) VALUES ($1)", ["dup"]);
    const error = await c.query("INSERT INTO items (name) VALUES ($1)", ["dup"]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UniqueViolation);
    expect((error as UniqueViolation).constraint).toBe("items_name_key");
    expect((error as UniqueViolation).detail).toContain("dup");
  });

  it("translates other errors into ConnectorError with the SQLSTATE", async () => {
    const error = await c.query("SELECT * FROM no_such_table").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).sqlState).toBe("42P01");
  });

  it("commits a transaction", async () => {
    const result = await c.transaction(async (tx) => {
      await tx.query("INSERT INTO items (name) VALUES ($1)", ["committed"]);
      return "done";
    });
    expect(result).toBe("done");
    expect(await c.query("SELECT 1 FROM items WHERE name = $1", ["committed"])).toHaveLength(1);
  });

  it("rolls back when fn throws, rethrowing the caller's error as is", async () => {
    const mine = new Error("task failed");
    const error = await c
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["rolled-back"]);
        throw mine;
      })
      .catch((e: unknown) => e);
    expect(error).toBe(mine);
    expect(await c.query("SELECT 1 FROM items WHERE name = $1", ["rolled-back"])).toHaveLength(0);
  });

  it("translates errors inside a transaction and rolls back", async () => {
    await c.query("INSERT INTO items (name) VALUES ($1)", ["taken"]);
    const error = await c
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["tx-first"]);
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["taken"]);
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UniqueViolation);
    expect(await c.query("SELECT 1 FROM items WHERE name = $1", ["tx-first"])).toHaveLength(0);
  });

  it("reports a commit that Postgres turned into a rollback", async () => {
    const error = await c
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ($1)", ["swallowed"]);
        await tx.query("SELECT 1 / 0").catch(() => {});
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).sqlState).toBe("25P02");
    expect(await c.query("SELECT 1 FROM items WHERE name = $1", ["swallowed"])).toHaveLength(0);
  });

  it("makes outside queries wait for a running transaction instead of joining it", async () => {
    const order: string[] = [];
    let outside: Promise<unknown> | undefined;
    await c.transaction(async (tx) => {
      await tx.query("INSERT INTO items (name) VALUES ($1)", ["serialised"]);
      // Issued from another async context, as a concurrent caller would.
      outside = new Promise((resolve) => setImmediate(resolve)).then(async () => {
        const rows = await c.query("SELECT count(*)::int AS n FROM items WHERE name = $1", ["serialised"]);
        order.push(`outside saw ${(rows[0] as { n: number }).n}`);
      });
      await settle();
      await tx.query("UPDATE items SET name = $1 WHERE name = $2", ["serialised-2", "serialised"]);
      await tx.query("INSERT INTO items (name) VALUES ($1)", ["serialised"]);
      await settle();
      order.push("transaction ends");
    });
    await outside;
    expect(order).toEqual(["transaction ends", "outside saw 1"]);
  });

  it("delivers notifications, case preserved; NOTIFY in a transaction only after commit", async () => {
    const received: Notification[] = [];
    const states: string[] = [];
    const listener = await c.listen({
      channels: ["jobs", "Mixed Case"],
      onNotification: (n) => received.push(n),
      onStateChange: (s) => states.push(s),
    });
    expect(states).toEqual(["connected"]);
    await c.query("SELECT pg_notify('jobs', 'a'), pg_notify('Mixed Case', 'b'), pg_notify('other', 'c')");
    await settle();
    expect(received).toEqual([
      { channel: "jobs", payload: "a" },
      { channel: "Mixed Case", payload: "b" },
    ]);
    await c.transaction(async (tx) => {
      await tx.query("SELECT pg_notify('jobs', 'in-tx')");
      await settle();
      expect(received).toHaveLength(2);
    });
    await settle();
    expect(received.at(-1)).toEqual({ channel: "jobs", payload: "in-tx" });
    await c
      .transaction(async (tx) => {
        await tx.query("SELECT pg_notify('jobs', 'rolled-back')");
        throw new Error("abandon");
      })
      .catch(() => {});
    await Promise.all([listener.close(), listener.close()]);
    await listener.close();
    await c.query("SELECT pg_notify('jobs', 'after-close'), pg_notify('Mixed Case', 'after-close')");
    await settle();
    expect(received).toHaveLength(3);
  });

  it("logs a throwing notification handler instead of crashing", async () => {
    const logger = memoryLogger();
    const own = new PGliteConnector({ pglite: await PGlite.create({ loadDataDir: template }), logger });
    await own.open();
    const received: string[] = [];
    await own.listen({
      channels: ["throws"],
      onNotification: (n) => {
        received.push(n.payload);
        if (n.payload === "boom") throw new Error("handler failed");
      },
    });
    await own.query("SELECT pg_notify('throws', 'boom')");
    await own.query("SELECT pg_notify('throws', 'next')");
    await settle();
    expect(received).toEqual(["boom", "next"]);
    expect(logger.actions).toContain("listen_notification_error");
    await own.close();
  });

  it("wraps a caller's own PGlite transaction, translating errors, and honours its rollback", async () => {
    const db = await PGlite.create({ loadDataDir: template });
    const own = new PGliteConnector({ pglite: db });
    await own.open();
    await db
      .transaction(async (tx) => {
        const q = own.wrapConnection(tx);
        await q.query("INSERT INTO items (name) VALUES ($1)", ["callers-tx"]);
        expect(await q.query("SELECT 1 FROM items WHERE name = $1", ["callers-tx"])).toHaveLength(1);
        const error = await q
          .query("INSERT INTO items (name) VALUES ($1)", ["callers-tx"])
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UniqueViolation);
        await tx.rollback();
      })
      .catch(() => {});
    expect(await own.query("SELECT 1 FROM items WHERE name = $1", ["callers-tx"])).toHaveLength(0);
    await own.close();
    await db.close();
  });

  it("never closes an instance the user passes, and removes its listeners from it on close", async () => {
    const db = await PGlite.create({ loadDataDir: template });
    const own = new PGliteConnector({ pglite: db });
    await Promise.all([own.open(), own.open()]);
    const received: string[] = [];
    await own.listen({ channels: ["user_owned"], onNotification: (n) => received.push(n.payload) });
    await Promise.all([own.close(), own.close()]);
    await own.close();
    expect(db.closed).toBe(false);
    await db.query("SELECT pg_notify('user_owned', 'after-close')");
    await settle();
    expect(received).toEqual([]);
    await expect(own.query("SELECT 1")).rejects.toThrow(/not open/);
    await db.close();
  });

  it("closes the instance it owns, idempotently", async () => {
    const own = new PGliteConnector({ loadDataDir: template });
    await own.open();
    await Promise.all([own.close(), own.close()]);
    await own.close();
    await expect(own.query("SELECT 1")).rejects.toThrow(/not open/);
  });

  it("round-trips a dump: a new connector loaded from it has the data", async () => {
    await c.query("INSERT INTO items (name) VALUES ($1)", ["dumped"]);
    const dump = await c.dumpDataDir();
    const copy = new PGliteConnector({ loadDataDir: dump });
    await copy.open();
    expect(await copy.query("SELECT name FROM items WHERE name = $1", ["dumped"])).toEqual([
      { name: "dumped" },
    ]);
    await copy.close();
  });

  it("keeps data in dataDir across instances", async () => {
    const dir = await mkdtemp(join(tmpdir(), "proc-pglite-"));
    try {
      const first = new PGliteConnector({ dataDir: dir, loadDataDir: template });
      await first.open();
      await first.query("INSERT INTO items (name) VALUES ($1)", ["persisted"]);
      await first.close();
      const second = new PGliteConnector({ dataDir: dir });
      await second.open();
      expect(await second.query("SELECT name FROM items WHERE name = $1", ["persisted"])).toEqual([
        { name: "persisted" },
      ]);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("fails to open with a ConnectionError naming the data directory when PGlite cannot start", async () => {
    const dir = await mkdtemp(join(tmpdir(), "proc-pglite-"));
    try {
      await writeFile(join(dir, "file"), "");
      const bad = join(dir, "file", "data");
      const error = await new PGliteConnector({ dataDir: bad }).open().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionError);
      expect((error as Error).message).toContain(bad);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rejects options it cannot honour", async () => {
    expect(() => new PGliteConnector({ pglite: {} as PGlite, dataDir: "/tmp/x" })).toThrow(InvalidOptions);
    await expect(c.listen({ channels: ['a"b'], onNotification: () => {} })).rejects.toThrow(InvalidOptions);
  });
});
