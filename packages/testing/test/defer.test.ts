import {
  AlreadyEnqueued,
  type DriverConnection,
  InvalidArgs,
  InvalidOptions,
  type JobOptions,
  TaskNotFound,
} from "@proc/core";
import { backends } from "@proc/testing";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { eventTypes, getJob, registerWorker, sql, useSharedApp } from "./helpers.js";

describe.each(backends())("defer on %s", (backend) => {
  const ctx = useSharedApp(backend);
  const app = () => ctx.app;

  // Task names are per app, and the app is shared by the tests of this block.
  let n = 0;
  const task = (options: { queue?: string; priority?: number; lock?: string; queueingLock?: string } = {}) =>
    app().task<{ n?: number; [key: string]: unknown }>({ name: `task_${n++}`, ...options }, () => {});

  describe("jobs", () => {
    it("returns ids in order and applies the defaults", async () => {
      const t = task();
      const first = await t.defer({ n: 1 });
      const more = await t.batchDefer([{ n: 2 }, { n: 3 }, { n: 4 }]);
      expect([first, ...more]).toEqual([...[first, ...more]].sort((a, b) => a - b));
      expect(new Set([first, ...more]).size).toBe(4);

      const job = await getJob(app(), first);
      expect(job).toMatchObject({
        id: first,
        task: t.name,
        queue: "default",
        priority: 0,
        lock: null,
        queueingLock: null,
        args: { n: 1 },
        status: "todo",
        scheduledAt: null,
        attempts: 0,
        stalledCount: 0,
        workerId: null,
        abortRequested: false,
        result: null,
        error: null,
        startedAt: null,
        finishedAt: null,
      });
      expect(job.createdAt).toBeInstanceOf(Date);
      expect(eventTypes(job)).toEqual(["deferred"]);
      expect(job.events[0]!.at).toBeInstanceOf(Date);
      for (const [i, id] of more.entries()) expect((await getJob(app(), id)).args).toEqual({ n: i + 2 });
    });

    it("a batch keeps each job's own values, whichever columns are shared", async () => {
      const at = new Date(Date.now() + 3_600_000);
      const base = {
        task: "mixed",
        queue: "q",
        priority: 1,
        lock: null,
        queueingLock: null,
        scheduledAt: null,
      };
      const jobs = [
        { ...base, args: { i: 0 } },
        { ...base, queue: "q2", lock: "L", args: { i: 1 } },
        { ...base, priority: -3, queueingLock: "QL", scheduledAt: at, args: { i: 2 } },
        { ...base, task: "mixed2", args: { i: 3 } },
      ];
      const ids = await app().jobManager.deferJobs(jobs);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      for (const [i, id] of ids.entries()) {
        const { args, ...expected } = jobs[i]!;
        expect(await getJob(app(), id)).toMatchObject({ ...expected, args });
      }
      // Every column shared but the args (sent once each, see defer_jobs_v1).
      const same = await app().jobManager.deferJobs([
        { ...base, lock: "L2", scheduledAt: at, args: { i: 4 } },
        { ...base, lock: "L2", scheduledAt: at, args: { i: 5 } },
      ]);
      for (const [i, id] of same.entries())
        expect(await getJob(app(), id)).toMatchObject({
          ...base,
          lock: "L2",
          scheduledAt: at,
          args: { i: i + 4 },
        });
    });

    it("refuses, in the database, columns whose lengths match neither the batch nor one", async () => {
      const call = (queues: string, tasks: string) =>
        sql(
          app(),
          `SELECT {schema}.defer_jobs_v1(${queues}, ${tasks}, ARRAY[0], ARRAY[NULL::text], ARRAY[NULL::text],
                                         '[{}, {}, {}]', ARRAY[NULL::timestamptz])`,
        );
      await expect(call("ARRAY['a', 'b']", "ARRAY['t']")).rejects.toThrow(
        /one element per job, or one for all/,
      );
      await expect(call("ARRAY['a']", "ARRAY['t', 't', 't', 't']")).rejects.toThrow(/one element per job/);
      expect(await call("ARRAY['a', 'b', 'c']", "ARRAY['t']")).toHaveLength(3);
    });

    it("batchDefer of nothing inserts nothing", async () => {
      expect(await task().batchDefer([])).toEqual([]);
      expect(await app().jobManager.listJobs()).toEqual([]);
    });

    it("keeps args as given, including unicode, nesting and dropped undefined properties", async () => {
      const args = {
        s: "héllo 🌍 \\ \" '",
        nested: { a: [1, 2.5, null, true, { b: "c" }] },
        skip: undefined,
      };
      const job = await getJob(app(), await task().defer(args));
      expect(job.args).toEqual({ s: "héllo 🌍 \\ \" '", nested: { a: [1, 2.5, null, true, { b: "c" }] } });
    });

    it("uses the task's options, overridden by configure()", async () => {
      const t = task({ queue: "emails", priority: 3, lock: "l", queueingLock: "ql" });
      const fromTask = await getJob(app(), await t.defer({}));
      expect(fromTask).toMatchObject({ queue: "emails", priority: 3, lock: "l", queueingLock: "ql" });

      const at = new Date(Date.now() + 3_600_000);
      const id = await t
        .configure({ queue: "other", priority: -7, lock: "user:1", queueingLock: "mail:1", scheduleAt: at })
        .defer({});
      expect(await getJob(app(), id)).toMatchObject({
        queue: "other",
        priority: -7,
        lock: "user:1",
        queueingLock: "mail:1",
        scheduledAt: at,
      });
    });

    it("configure() accepts null to clear a task's lock and queueing lock", async () => {
      const t = task({ lock: "l", queueingLock: "ql" });
      const job = await getJob(app(), await t.configure({ lock: null, queueingLock: null }).defer({}));
      expect(job).toMatchObject({ lock: null, queueingLock: null });
    });

    it("scheduleIn schedules relative to now; the later of scheduleAt/scheduleIn wins", async () => {
      const t = task();
      const before = Date.now();
      const job = await getJob(app(), await t.configure({ scheduleIn: { seconds: 30 } }).defer({}));
      const after = Date.now();
      expect(job.scheduledAt!.getTime()).toBeGreaterThanOrEqual(before + 30_000);
      expect(job.scheduledAt!.getTime()).toBeLessThanOrEqual(after + 30_000);

      const ms = await getJob(app(), await t.configure({ scheduleIn: 90_000 }).defer({}));
      expect(ms.scheduledAt!.getTime()).toBeGreaterThanOrEqual(before + 90_000);

      const at = new Date("2031-02-03T04:05:06.789Z");
      const chained = t.configure({ scheduleIn: { minutes: 5 } }).configure({ scheduleAt: at });
      expect((await getJob(app(), await chained.defer({}))).scheduledAt).toEqual(at);
      const back = t.configure({ scheduleAt: at }).configure({ scheduleIn: { hours: 1 } });
      const inAnHour = (await getJob(app(), await back.defer({}))).scheduledAt!.getTime();
      expect(inAnHour).toBeGreaterThanOrEqual(before + 3_600_000);
      expect(inAnHour).toBeLessThan(at.getTime());
    });

    it("batchDefer applies the deferrer's options to every job", async () => {
      const ids = await task()
        .configure({ queue: "bulk", priority: 2, lock: "shared" })
        .batchDefer([{ n: 1 }, { n: 2 }]);
      for (const id of ids)
        expect(await getJob(app(), id)).toMatchObject({ queue: "bulk", priority: 2, lock: "shared" });
    });

    it("emits job:deferred with the ids", async () => {
      const t = task({ queue: "q" });
      const seen: unknown[] = [];
      const off = app().on("job:deferred", (e) => seen.push(e));
      try {
        const ids = await t.batchDefer([{}, {}]);
        expect(seen).toEqual([{ ids, task: t.name, queue: "q" }]);
      } finally {
        off();
      }
    });
  });

  describe("configureTask", () => {
    it("defers a registered task by name with its options", async () => {
      const t = task({ queue: "named" });
      const id = await app().configureTask(t.name, { priority: 4 }).defer({ n: 1 });
      expect(await getJob(app(), id)).toMatchObject({ task: t.name, queue: "named", priority: 4 });
    });

    it("throws TaskNotFound listing registered names, unless allowUnknown", async () => {
      const t = task();
      let error: unknown;
      try {
        app().configureTask("nope");
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TaskNotFound);
      expect(error).toMatchObject({ code: "TASK_NOT_FOUND", taskName: "nope" });
      expect((error as Error).message).toContain("nope");
      expect((error as Error).message).toContain(t.name);
      expect((error as Error).message).toContain("allowUnknown");

      const id = await app()
        .configureTask("elsewhere", { allowUnknown: true, queue: "remote" })
        .defer({ x: 1 });
      expect(await getJob(app(), id)).toMatchObject({
        task: "elsewhere",
        queue: "remote",
        args: { x: 1 },
        status: "todo",
      });
    });
  });

  describe("queueing locks", () => {
    it("refuses a second todo job with the same queueing lock", async () => {
      const t = task().configure({ queueingLock: "mail:1" });
      const first = await t.defer({ n: 1 });
      const error = await t.defer({ n: 2 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AlreadyEnqueued);
      expect(error).toMatchObject({ code: "ALREADY_ENQUEUED", queueingLock: "mail:1" });
      // Another task's job with the same queueing lock conflicts too: the lock is global.
      await expect(task().configure({ queueingLock: "mail:1" }).defer({})).rejects.toBeInstanceOf(
        AlreadyEnqueued,
      );
      expect((await app().jobManager.listJobs()).map((j) => j.id)).toEqual([first]);
      // Other queueing locks and no queueing lock are unaffected.
      await t.configure({ queueingLock: "mail:2" }).defer({});
      await t.configure({ queueingLock: null }).defer({});
      await t.configure({ queueingLock: null }).defer({});
    });

    it("names the conflicting queueing lock, also one with odd characters", async () => {
      const lock = "a) already exists (b=(c)";
      await task().configure({ queueingLock: lock }).defer({});
      const error = await task()
        .configure({ queueingLock: lock })
        .defer({})
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "ALREADY_ENQUEUED", queueingLock: lock });
    });

    it("a batch in which one job conflicts with an existing one inserts nothing", async () => {
      const t = task();
      await t.configure({ queueingLock: "q1" }).defer({});
      const error = await t
        .configure({ queueingLock: "q1" })
        .batchDefer([{ n: 1 }, { n: 2 }])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AlreadyEnqueued);
      expect(await app().jobManager.listJobs()).toHaveLength(1);
    });

    it("a batch of two jobs sharing a queueing lock inserts nothing", async () => {
      const error = await task()
        .configure({ queueingLock: "twice" })
        .batchDefer([{ n: 1 }, { n: 2 }, { n: 3 }])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AlreadyEnqueued);
      expect((error as AlreadyEnqueued).queueingLock).toBe("twice");
      expect(await app().jobManager.listJobs()).toEqual([]);
    });

    it("is released once the job is doing, cancelled, or finished", async () => {
      const t = task().configure({ queueingLock: "ql" });
      const first = await t.defer({});
      const worker = await registerWorker(app());
      const fetched = await app().jobManager.fetchJobs(worker, null, 10);
      expect(fetched.map((j) => j.id)).toEqual([first]);
      const second = await t.defer({});
      await expect(t.defer({})).rejects.toBeInstanceOf(AlreadyEnqueued);
      expect(await app().jobManager.cancelJob(second)).toBe("cancelled");
      await t.defer({});
      expect(await app().jobManager.listJobs({ status: "todo" })).toHaveLength(1);
    });

    it("a batch inside the caller's transaction that conflicts raises AlreadyEnqueued (translated)", async () => {
      const t = task().configure({ queueingLock: "tx" });
      await t.defer({});
      const error = await app()
        .connector.transaction(async (tx) => {
          await t.defer({}, { connection: adapt(tx) });
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AlreadyEnqueued);
      expect(await app().jobManager.listJobs()).toHaveLength(1);
    });
  });

  describe("inside the caller's transaction", () => {
    // The connector's own transaction, handed to defer() through the driver shape
    // ({ query } returning { rows }) that a pg PoolClient or PGlite Transaction has. This
    // runs on both backends; the pg-only test below uses a real pg.Client.
    it("a rolled-back transaction leaves no job; a committed one leaves it", async () => {
      const t = task();
      const rollback = new Error("rollback");
      await expect(
        app().connector.transaction(async (tx) => {
          const id = await t.defer({ n: 1 }, { connection: adapt(tx) });
          // Visible inside the transaction...
          expect(await app().jobManager.getJob(id, tx)).toMatchObject({ id, status: "todo" });
          throw rollback;
        }),
      ).rejects.toBe(rollback);
      expect(await app().jobManager.listJobs()).toEqual([]);

      const ids = await app().connector.transaction(async (tx) =>
        t.batchDefer([{ n: 2 }, { n: 3 }], { connection: adapt(tx) }),
      );
      expect((await app().jobManager.listJobs()).map((j) => j.id).sort()).toEqual([...ids].sort());
    });

    it.runIf(backend === "pg")(
      "with a pg.Client: ROLLBACK → no job, COMMIT → job, invisible until then",
      async () => {
        const t = task();
        const client = new pg.Client({ connectionString: ctx.t.db.url! });
        await client.connect();
        try {
          await client.query("BEGIN");
          await t.defer({ n: 1 }, { connection: client });
          await client.query("ROLLBACK");
          expect(await app().jobManager.listJobs()).toEqual([]);

          await client.query("BEGIN");
          const id = await t.defer({ n: 2 }, { connection: client });
          // Not committed yet: the app's own pool does not see it.
          expect(await app().jobManager.listJobs()).toEqual([]);
          await client.query("COMMIT");
          expect((await app().jobManager.listJobs()).map((j) => j.id)).toEqual([id]);

          // A conflict on the caller's connection is translated too.
          await t.configure({ queueingLock: "c" }).defer({}, { connection: client });
          await expect(
            t.configure({ queueingLock: "c" }).defer({}, { connection: client }),
          ).rejects.toBeInstanceOf(AlreadyEnqueued);
        } finally {
          await client.end();
        }
      },
    );
  });

  describe("bad input is refused with a typed error and nothing is written", () => {
    class Point {
      x = 1;
    }
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const badArgs: Array<[string, unknown]> = [
      ["a function", { f: () => 1 }],
      ["a bigint", { n: 10n }],
      ["a Date", { d: new Date() }],
      ["a Map", { m: new Map([["a", 1]]) }],
      ["a class instance", { p: new Point() }],
      ["NaN", { n: Number.NaN }],
      ["Infinity", { n: [Number.POSITIVE_INFINITY] }],
      ["a symbol", { s: Symbol("s") }],
      ["undefined in an array", { a: [1, undefined] }],
      ["a cyclic object", cyclic],
      ["a NUL in a string", { s: "a\u0000b" }],
      ["a NUL in a key", { "a\u0000b": 1 }],
      ["a lone surrogate", { s: "\ud800" }],
      ["null args", null],
      ["number args", 1],
      ["string args", "x"],
      ["array args", [1]],
      ["a Date as args", new Date()],
      ["a class instance as args", new Point()],
    ];

    it.each(badArgs)("args with %s", async (_what, args) => {
      const t = task();
      const error = await t.defer(args as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgs);
      expect(error).toMatchObject({ code: "INVALID_ARGS" });
      // A batch with one bad element writes nothing either.
      await expect(t.batchDefer([{ ok: 1 }, args as never])).rejects.toBeInstanceOf(InvalidArgs);
      expect(await app().jobManager.listJobs()).toEqual([]);
    });

    it("the error names the path to the bad value", async () => {
      const error = (await task()
        .defer({ deep: { list: [0, { when: new Date() }] } })
        .catch((e: unknown) => e)) as InvalidArgs;
      expect(error.message).toContain("args.deep.list[1].when");
      expect(error.message).toContain("nothing was deferred");
    });

    const badOptions: Array<[string, Record<string, unknown>]> = [
      ["a queue of 129 characters", { queue: "q".repeat(129) }],
      ["an empty queue", { queue: "" }],
      ["a non-string queue", { queue: 5 }],
      ["a lock of 257 characters", { lock: "l".repeat(257) }],
      ["an empty lock", { lock: "" }],
      ["a queueing lock of 257 characters", { queueingLock: "l".repeat(257) }],
      ["an empty queueing lock", { queueingLock: "" }],
      ["a queue with NUL", { queue: "a\u0000" }],
      ["a fractional priority", { priority: 1.5 }],
      ["a priority above int32", { priority: 2 ** 31 }],
      ["a priority below int32", { priority: -(2 ** 31) - 1 }],
      ["a NaN priority", { priority: Number.NaN }],
      ["a string priority", { priority: "1" }],
      ["an invalid scheduleAt", { scheduleAt: new Date("nope") }],
      ["a string scheduleAt", { scheduleAt: "2030-01-01" }],
      ["a negative scheduleIn", { scheduleIn: -1 }],
      ["a NaN scheduleIn", { scheduleIn: { seconds: Number.NaN } }],
    ];

    it.each(badOptions)("configure() with %s", async (_what, options) => {
      const t = task();
      expect(() => t.configure(options as never)).toThrow(InvalidArgs);
      expect(() => app().configureTask(t.name, options as never)).toThrow(InvalidArgs);
      expect(() =>
        app().configureTask("unknown", { allowUnknown: true, ...(options as JobOptions) }),
      ).toThrow(InvalidArgs);
      expect(() => app().task({ name: `bad_${n++}`, ...(options as JobOptions) }, () => {})).toThrow(
        /invalid|must/,
      );
      expect(await app().jobManager.listJobs()).toEqual([]);
    });

    it("accepts the limits themselves", async () => {
      const id = await task()
        .configure({
          queue: "q".repeat(128),
          lock: "l".repeat(256),
          queueingLock: "k".repeat(256),
          priority: 2 ** 31 - 1,
        })
        .defer({});
      await task()
        .configure({ priority: -(2 ** 31) })
        .defer({});
      expect((await getJob(app(), id)).priority).toBe(2 ** 31 - 1);
    });

    it("task names: empty or over 128 characters", async () => {
      expect(() => app().task({ name: "" }, () => {})).toThrow(InvalidOptions);
      expect(() => app().task({ name: "t".repeat(129) }, () => {})).toThrow(InvalidOptions);
      for (const name of ["", "t".repeat(129), "a\u0000b"]) {
        const error = await Promise.resolve()
          .then(() => app().configureTask(name, { allowUnknown: true }).defer({}))
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidArgs);
      }
      expect(await app().jobManager.listJobs()).toEqual([]);
    });
  });
});

/** The connector's transaction handle in the driver's shape ({ rows }), as defer({ connection }) takes. */
function adapt(tx: {
  query(sql: string, params?: readonly unknown[]): Promise<unknown[]>;
}): DriverConnection {
  return { query: (text, params) => tx.query(text, params).then((rows) => ({ rows })) };
}
