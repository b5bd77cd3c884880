import { ConnectionError, type Notification } from "@proc/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgConnector } from "../src/index.js";
import { createTestDatabase, memoryLogger, skipPg, type TestDatabase, waitFor } from "./helpers.js";

describe.skipIf(skipPg)("PgConnector.listen", () => {
  let db: TestDatabase;
  let connector: PgConnector;

  beforeAll(async () => {
    db = await createTestDatabase();
    connector = new PgConnector({
      connectionString: db.url,
      listenReconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    await connector.open();
  });

  afterAll(async () => {
    await connector?.close();
    await db?.drop();
  });

  /** The backend of a listen connection, found by the channel it listens to. */
  async function listenBackends(): Promise<number[]> {
    const rows = await db.admin(
      "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %' AND state = 'idle'",
      [new URL(db.url).pathname.slice(1)],
    );
    return rows.map((r) => Number(r.pid));
  }

  it("delivers notifications of every channel it listens to, case preserved", async () => {
    const received: Notification[] = [];
    const states: string[] = [];
    const listener = await connector.listen({
      channels: ["jobs", "Mixed Case"],
      onNotification: (n) => received.push(n),
      onStateChange: (s) => states.push(s),
    });
    try {
      expect(states).toEqual(["connected"]);
      await connector.query(
        "SELECT pg_notify('jobs', 'a'), pg_notify('Mixed Case', 'b'), pg_notify('other', 'c')",
      );
      await connector.transaction(async (tx) => {
        await tx.query("NOTIFY jobs");
      });
      await waitFor(() => received.length >= 3);
      expect(received).toEqual([
        { channel: "jobs", payload: "a" },
        { channel: "Mixed Case", payload: "b" },
        { channel: "jobs", payload: "" },
      ]);
    } finally {
      await listener.close();
    }
  });

  it("reconnects after its connection is terminated and listens again", async () => {
    const received: Notification[] = [];
    const states: string[] = [];
    const logger = memoryLogger();
    const c = new PgConnector({
      connectionString: db.url,
      logger,
      listenReconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    await c.open();
    const listener = await c.listen({
      channels: ["reconnect"],
      onNotification: (n) => received.push(n),
      onStateChange: (s) => states.push(s),
    });
    try {
      await waitFor(async () => (await listenBackends()).length === 1);
      const [pid] = await listenBackends();
      await db.admin("SELECT pg_terminate_backend($1)", [pid]);
      await waitFor(() => states.length >= 3);
      expect(states).toEqual(["connected", "disconnected", "connected"]);
      expect(logger.lines.map((l) => l.obj.action)).toContain("listen_reconnected");
      const [newPid] = await listenBackends();
      expect(newPid).not.toBe(pid);
      await c.query("SELECT pg_notify('reconnect', 'after')");
      await waitFor(() => received.length >= 1);
      expect(received).toEqual([{ channel: "reconnect", payload: "after" }]);
    } finally {
      await listener.close();
      await c.close();
    }
  });

  it("keeps retrying while the server refuses, then stops when closed", async () => {
    const states: string[] = [];
    const logger = memoryLogger();
    const c = new PgConnector({
      connectionString: db.url,
      logger,
      listenReconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    });
    await c.open();
    const listener = await c.listen({
      channels: ["retry"],
      onNotification: () => {},
      onStateChange: (s) => states.push(s),
    });
    const dbName = new URL(db.url).pathname.slice(1);
    try {
      await db.admin(`ALTER DATABASE "${dbName}" WITH ALLOW_CONNECTIONS false`);
      const [pid] = await listenBackends();
      await db.admin("SELECT pg_terminate_backend($1)", [pid]);
      await waitFor(() => logger.lines.filter((l) => l.obj.action === "listen_reconnect_failed").length >= 2);
      expect(states).toEqual(["connected", "disconnected"]);
    } finally {
      await db.admin(`ALTER DATABASE "${dbName}" WITH ALLOW_CONNECTIONS true`);
    }
    await waitFor(() => states.length === 3);
    expect(states.at(-1)).toBe("connected");
    await Promise.all([listener.close(), listener.close()]);
    await listener.close();
    await c.close();
    expect(await listenBackends()).toEqual([]);
  });

  it("logs a throwing notification handler instead of crashing", async () => {
    const logger = memoryLogger();
    const c = new PgConnector({ connectionString: db.url, logger });
    await c.open();
    const received: string[] = [];
    const listener = await c.listen({
      channels: ["throws"],
      onNotification: (n) => {
        received.push(n.payload);
        if (n.payload === "boom") throw new Error("handler failed");
      },
    });
    try {
      await c.query("SELECT pg_notify('throws', 'boom')");
      await c.query("SELECT pg_notify('throws', 'next')");
      await waitFor(() => received.length === 2);
      expect(logger.lines.map((l) => l.obj.action)).toContain("listen_notification_error");
    } finally {
      await c.close();
      await listener.close();
    }
  });

  it("rejects with a ConnectionError when the first connect fails", async () => {
    const c = new PgConnector({ connectionString: db.url });
    await c.open();
    const dbName = new URL(db.url).pathname.slice(1);
    await db.admin(`ALTER DATABASE "${dbName}" WITH ALLOW_CONNECTIONS false`);
    try {
      const error = await c.listen({ channels: ["x"], onNotification: () => {} }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionError);
      expect((error as Error).message).toMatch(/127\.0\.0\.1:5432|localhost:5432/);
    } finally {
      await db.admin(`ALTER DATABASE "${dbName}" WITH ALLOW_CONNECTIONS true`);
      await c.close();
    }
  });
});
