import { ConnectorError, type Notification, UniqueViolation, isProcError } from "@proc/core";
import { backends, waitFor } from "@proc/testing";
import { beforeAll, describe, expect, it } from "vitest";
import { useSharedApp } from "./helpers.js";

describe.each(backends())("connector contract on %s", (backend) => {
  const ctx = useSharedApp(backend);
  const connector = () => ctx.app.connector;

  beforeAll(async () => {
    await connector().query("CREATE TABLE public.connector_test (k integer PRIMARY KEY, v text)");
  });

  it("names its kind", () => {
    expect(connector().kind).toBe(backend);
  });

  it("runs parameterised queries and gives rows back", async () => {
    await connector().query("TRUNCATE public.connector_test");
    const rows = await connector().query<{ a: number; b: string; c: unknown; d: boolean | null }>(
      "SELECT $1::integer AS a, $2::text AS b, $3::jsonb AS c, $4::boolean AS d",
      [42, 'it\'s "quoted"; DROP TABLE x', JSON.stringify({ x: [1, null] }), null],
    );
    expect(rows).toEqual([{ a: 42, b: 'it\'s "quoted"; DROP TABLE x', c: { x: [1, null] }, d: null }]);
    expect(await connector().query("SELECT 1 AS one WHERE false", [])).toEqual([]);
    // Arrays travel as parameters too.
    const [arr] = await connector().query<{ n: number }>("SELECT cardinality($1::text[]) AS n", [["a", "b"]]);
    expect(arr).toEqual({ n: 2 });
    // A text without parameters may hold several statements (as migrations do).
    await connector().query(
      "INSERT INTO public.connector_test VALUES (1, 'a'); INSERT INTO public.connector_test VALUES (2, 'b')",
    );
    expect(await connector().query("SELECT k FROM public.connector_test ORDER BY k")).toEqual([
      { k: 1 },
      { k: 2 },
    ]);
  });

  it("commits a transaction that resolves, with its value", async () => {
    await connector().query("TRUNCATE public.connector_test");
    const value = await connector().transaction(async (tx) => {
      await tx.query("INSERT INTO public.connector_test VALUES ($1, $2)", [1, "one"]);
      const rows = await tx.query<{ v: string }>("SELECT v FROM public.connector_test WHERE k = $1", [1]);
      return rows[0]!.v;
    });
    expect(value).toBe("one");
    expect(await connector().query("SELECT k, v FROM public.connector_test")).toEqual([{ k: 1, v: "one" }]);
  });

  it("rolls back a transaction that throws, rethrowing the same error", async () => {
    await connector().query("TRUNCATE public.connector_test");
    const mine = new Error("mine");
    const thrown = await connector()
      .transaction(async (tx) => {
        await tx.query("INSERT INTO public.connector_test VALUES ($1, $2)", [1, "one"]);
        throw mine;
      })
      .catch((e: unknown) => e);
    expect(thrown).toBe(mine);
    expect(await connector().query("SELECT * FROM public.connector_test")).toEqual([]);
    // The connection is usable afterwards.
    expect(await connector().query("SELECT 1 AS x", [])).toEqual([{ x: 1 }]);
  });

  it("translates a unique violation into UniqueViolation carrying the constraint", async () => {
    await connector().query("TRUNCATE public.connector_test");
    await connector().query("INSERT INTO public.connector_test VALUES ($1, $2)", [1, "a"]);
    const error = await connector()
      .query("INSERT INTO public.connector_test VALUES ($1, $2)", [1, "b"])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UniqueViolation);
    expect(error).toMatchObject({
      code: "UNIQUE_VIOLATION",
      sqlState: "23505",
      constraint: "connector_test_pkey",
    });
    expect((error as UniqueViolation).detail).toContain("(k)=(1)");
    expect(isProcError(error, "UNIQUE_VIOLATION")).toBe(true);

    // Inside a transaction too, which is then rolled back.
    const inTx = await connector()
      .transaction(async (tx) => {
        await tx.query("INSERT INTO public.connector_test VALUES ($1, $2)", [2, "c"]);
        await tx.query("INSERT INTO public.connector_test VALUES ($1, $2)", [2, "d"]);
      })
      .catch((e: unknown) => e);
    expect(inTx).toBeInstanceOf(UniqueViolation);
    expect((inTx as UniqueViolation).constraint).toBe("connector_test_pkey");
    expect(await connector().query("SELECT k FROM public.connector_test")).toEqual([{ k: 1 }]);
  });

  it("translates a partial unique index violation on proc's tables (jobs_queueing_lock_idx)", async () => {
    const insert = `INSERT INTO proc.jobs (queue_name, task_name, queueing_lock, events) VALUES ('q', 't', 'ql', '[]')`;
    await connector().query(insert);
    const error = await connector()
      .query(insert)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UniqueViolation);
    expect((error as UniqueViolation).constraint).toBe("jobs_queueing_lock_idx");
  });

  it("translates other database errors into ConnectorError with the SQLSTATE", async () => {
    const syntax = await connector()
      .query("SELEC 1", [])
      .catch((e: unknown) => e);
    expect(syntax).toBeInstanceOf(ConnectorError);
    expect(syntax).toMatchObject({ code: "CONNECTOR_ERROR", sqlState: "42601" });
    const division = await connector()
      .query("SELECT 1 / $1::integer AS x", [0])
      .catch((e: unknown) => e);
    expect(division).toMatchObject({ code: "CONNECTOR_ERROR", sqlState: "22012" });
  });

  it("wrapConnection translates the caller's connection errors", async () => {
    const wrapped = connector().wrapConnection({
      query: () => Promise.reject(Object.assign(new Error("dup"), { code: "23505", constraint: "c_idx" })),
    });
    const error = await wrapped.query("SELECT 1").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UniqueViolation);
    expect((error as UniqueViolation).constraint).toBe("c_idx");
    const ok = connector().wrapConnection({ query: async () => ({ rows: [{ a: 1 }] }) });
    expect(await ok.query("SELECT 1")).toEqual([{ a: 1 }]);
  });

  it("delivers NOTIFY to listeners, after commit only, and stops on close", async () => {
    const received: Notification[] = [];
    const states: string[] = [];
    const listener = await connector().listen({
      channels: ["proc_test_channel"],
      onNotification: (n) => received.push(n),
      onStateChange: (s) => states.push(s),
    });
    try {
      expect(states).toEqual(["connected"]);
      await connector().query("SELECT pg_notify($1, $2)", ["proc_test_channel", "hello"]);
      await waitFor(() => received.length === 1, { what: "a notification" });
      expect(received[0]).toEqual({ channel: "proc_test_channel", payload: "hello" });

      await connector()
        .transaction(async (tx) => {
          await tx.query("SELECT pg_notify($1, $2)", ["proc_test_channel", "rolled back"]);
          throw new Error("rollback");
        })
        .catch(() => {});
      await connector().query("SELECT pg_notify($1, $2)", ["proc_test_channel", "after"]);
      await waitFor(() => received.length === 2, { what: "the second notification" });
      expect(received.map((n) => n.payload)).toEqual(["hello", "after"]);
    } finally {
      await listener.close();
      await listener.close();
    }
    await connector().query("SELECT pg_notify($1, $2)", ["proc_test_channel", "unheard"]);
    // A later notification on another listener arrives; the closed one stays silent.
    const later: string[] = [];
    const other = await connector().listen({
      channels: ["proc_test_channel"],
      onNotification: (n) => later.push(n.payload),
    });
    try {
      await connector().query("SELECT pg_notify($1, $2)", ["proc_test_channel", "last"]);
      await waitFor(() => later.includes("last"), { what: "the last notification" });
      expect(received.map((n) => n.payload)).toEqual(["hello", "after"]);
    } finally {
      await other.close();
    }
  });
});
