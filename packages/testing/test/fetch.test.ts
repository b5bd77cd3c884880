import { App, type Job, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { backends } from "@proc/testing";
import { describe, expect, it } from "vitest";
import { eventTypes, getJob, idsOf, registerWorker, sql, useSharedApp } from "./helpers.js";

describe.each(backends())("fetch on %s", (backend) => {
  const ctx = useSharedApp(backend);
  const app = () => ctx.app;
  const jm = () => ctx.app.jobManager;

  /** Defer one job of an unregistered task (the fetch path does not care about handlers). */
  const defer = (options: { queue?: string; priority?: number; lock?: string; scheduleAt?: Date } = {}) =>
    app()
      .configureTask("t", { allowUnknown: true, ...options })
      .defer({});
  const future = () => new Date(Date.now() + 3_600_000);
  const error = { name: "Error", message: "boom" };

  /** The run job `id` is doing now, as the worker that claimed it holds it. */
  const runOf = async (id: number) => ({ id, run: (await getJob(app(), id)).run });
  /** Complete the current run of each job (the worker that claimed them finishing them). */
  const complete = async (...ids: number[]) =>
    jm().completeJobs(await Promise.all(ids.map(async (id) => ({ ...(await runOf(id)), result: null }))));

  /** Fetch one job at a time until none is left: the order a single worker would get. */
  async function drainOneByOne(worker: number, queues: string[] | null = null): Promise<number[]> {
    const order: number[] = [];
    for (;;) {
      const [job] = await jm().fetchJobs(worker, queues, 1);
      if (!job) return order;
      order.push(job.id);
      await jm().completeJobs([{ id: job.id, run: job.run, result: null }]);
    }
  }

  it("hands a worker the same job as getJob, though it reads less of the row", async () => {
    const worker = await registerWorker(app());
    const id = await app()
      .configureTask("t", {
        allowUnknown: true,
        queue: "q1",
        priority: 3,
        lock: "l",
        queueingLock: "ql",
        scheduleAt: new Date(Date.now() - 1000),
      })
      .defer({ nested: { a: [1, "two", null] } });
    const [fetched] = await jm().fetchJobs(worker, ["q1"], 10);
    expect(fetched).toEqual(await getJob(ctx.app, id));
  });

  it("claims jobs by priority desc, then id asc, and records the start", async () => {
    const worker = await registerWorker(app());
    const a = await defer();
    const b = await defer({ priority: 5 });
    const c = await defer();
    const d = await defer({ priority: -1 });
    const e = await defer({ priority: 5 });
    const [first] = await jm().fetchJobs(worker, null, 1);
    expect(first).toMatchObject({ id: b, status: "doing", workerId: worker, attempts: 1, run: 1 });
    expect(first!.startedAt).toBeInstanceOf(Date);
    expect(eventTypes(first!)).toEqual(["deferred", "started"]);
    expect(first!.events[1]).toMatchObject({ type: "started", worker_id: worker });
    await jm().completeJobs([{ id: b, run: first!.run, result: null }]);
    expect(await drainOneByOne(worker)).toEqual([e, a, c, d]);
  });

  it("returns nothing when there is nothing to do", async () => {
    const worker = await registerWorker(app());
    expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
    expect(await jm().fetchJobs(worker, ["x"], 10)).toEqual([]);
  });

  it("filters by queue; null means every queue", async () => {
    const worker = await registerWorker(app());
    const a = await defer({ queue: "a" });
    const b = await defer({ queue: "b" });
    const c = await defer({ queue: "c" });
    expect(idsOf(await jm().fetchJobs(worker, ["b"], 10))).toEqual([b]);
    expect(await jm().fetchJobs(worker, ["b", "zzz"], 10)).toEqual([]);
    expect(await jm().fetchJobs(worker, [], 10)).toEqual([]);
    expect(idsOf(await jm().fetchJobs(worker, ["a", "c"], 10))).toEqual([a, c]);
    expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
  });

  it("does not fetch jobs scheduled in the future, and fetches them once due", async () => {
    const worker = await registerWorker(app());
    const later = await defer({ scheduleAt: future() });
    const past = await defer({ scheduleAt: new Date(Date.now() - 60_000) });
    expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([past]);
    expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
    expect(await jm().nextScheduledAt(null)).toEqual((await getJob(app(), later)).scheduledAt);
    await sql(app(), "UPDATE {schema}.jobs SET scheduled_at = now() - interval '1 second' WHERE id = $1", [
      later,
    ]);
    expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([later]);
    expect(await jm().nextScheduledAt(null)).toBeNull();
  });

  describe("locks", () => {
    it("only the ready head of a lock is fetched, in priority then id order", async () => {
      const worker = await registerWorker(app());
      const l1 = await defer({ lock: "L" });
      const l2 = await defer({ lock: "L", priority: 5 });
      const l3 = await defer({ lock: "L" });
      const free = await defer();
      // One call, limit 10: the head of L (l2, higher priority) and the free job, nothing else of L.
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([l2, free].sort((x, y) => x - y));
      // A doing job blocks its lock.
      expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
      await complete(l2);
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([l1]);
      expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
      await complete(l1);
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([l3]);
    });

    it("a doing job blocks its lock even for higher-priority jobs and other queues", async () => {
      const worker = await registerWorker(app());
      const head = await defer({ lock: "L", queue: "a" });
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([head]);
      await defer({ lock: "L", queue: "b", priority: 100 });
      expect(await jm().fetchJobs(worker, ["b"], 10)).toEqual([]);
      expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
    });

    it("the head of a lock blocks jobs of its lock in other queues, even when the fetcher skips its queue", async () => {
      const worker = await registerWorker(app());
      await defer({ lock: "L", queue: "a" });
      await defer({ lock: "L", queue: "b" });
      expect(await jm().fetchJobs(worker, ["b"], 10)).toEqual([]);
    });

    it("a job of the lock scheduled in the future does not block ready jobs of that lock", async () => {
      const worker = await registerWorker(app());
      const later = await defer({ lock: "L", priority: 10, scheduleAt: future() });
      const ready1 = await defer({ lock: "L" });
      const ready2 = await defer({ lock: "L" });
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([ready1]);
      await complete(ready1);
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([ready2]);
      await complete(ready2);
      expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
      expect((await getJob(app(), later)).status).toBe("todo");
    });

    it("a failed or aborted job releases its lock; a job retried for later keeps its place", async () => {
      const worker = await registerWorker(app());
      const [a, b, c, d] = [
        await defer({ lock: "L" }),
        await defer({ lock: "L" }),
        await defer({ lock: "L" }),
        await defer({ lock: "L" }),
      ];
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([a]);
      expect(await jm().failJob(await runOf(a), { status: "failed", error })).toBe("failed");
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([b]);
      expect(await jm().failJob(await runOf(b), { status: "aborted", error })).toBe("aborted");
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([c]);
      // Retried in an hour: it has run before, so it keeps its turn and d waits for it.
      expect(await jm().failJob(await runOf(c), { status: "todo", error, retry: { at: future() } })).toBe(
        "todo",
      );
      expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
      await sql(app(), "UPDATE {schema}.jobs SET scheduled_at = now() - interval '1 second' WHERE id = $1", [
        c,
      ]);
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([c]);
      await complete(c);
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([d]);
    });

    it("a job retried now stays ahead of later jobs of its lock (lock order is by id)", async () => {
      const worker = await registerWorker(app());
      const a = await defer({ lock: "L" });
      const b = await defer({ lock: "L" });
      const [claimed] = await jm().fetchJobs(worker, null, 10);
      await jm().failJob(claimed!, {
        status: "todo",
        error: { name: "Error", message: "retry" },
        retry: { at: new Date(Date.now() - 1000) },
      });
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([a]);
      await complete(a);
      expect(idsOf(await jm().fetchJobs(worker, null, 10))).toEqual([b]);
    });

    it("a batch fetch claims up to N jobs honouring priority, queues, schedule and locks", async () => {
      const worker = await registerWorker(app());
      const free = [await defer(), await defer({ priority: 2 }), await defer({ priority: 1 })];
      const lockA = [await defer({ lock: "A" }), await defer({ lock: "A", priority: 3 })];
      const lockB = [await defer({ lock: "B", priority: -1 }), await defer({ lock: "B", priority: -1 })];
      await defer({ priority: 50, scheduleAt: future() });
      await defer({ priority: 50, queue: "elsewhere" });

      // Expected order: lockA[1] (3), free[1] (2), free[2] (1), free[0] (0), lockB[0] (-1).
      const limited = await jm().fetchJobs(worker, ["default"], 3);
      expect(idsOf(limited)).toEqual([lockA[1]!, free[1]!, free[2]!].sort((x, y) => x - y));
      for (const job of limited)
        expect(job).toMatchObject({ status: "doing", workerId: worker, attempts: 1 });
      const rest = await jm().fetchJobs(worker, ["default"], 100);
      expect(idsOf(rest)).toEqual([free[0]!, lockB[0]!].sort((x, y) => x - y));
      expect(await jm().fetchJobs(worker, ["default"], 100)).toEqual([]);
      expect(await jm().listLocks()).toEqual([
        { name: "A", todo: 1, doing: 1 },
        { name: "B", todo: 1, doing: 1 },
      ]);
    });
  });

  describe("history", () => {
    const error = { name: "Error", message: "x" };
    /** What the row itself stores, without what readers derive. */
    const stored = async (id: number) =>
      (
        await sql<{ events: Array<{ type: string }> }>(
          app(),
          "SELECT events FROM {schema}.jobs WHERE id = $1",
          [id],
        )
      )[0]!.events.map((e) => e.type);
    const fetchOne = async (worker: number) => (await jm().fetchJobs(worker, null, 1))[0]!;

    it("is not written by fetch and completion, yet reads whole", async () => {
      const worker = await registerWorker(app());
      const id = await defer();
      const fetched = await fetchOne(worker);
      expect(await stored(id)).toEqual([]);
      expect(fetched.events).toEqual([
        { type: "deferred", at: fetched.createdAt },
        { type: "started", at: fetched.startedAt, worker_id: worker },
      ]);
      await jm().completeJobs([{ id, run: fetched.run, result: 1 }]);
      expect(await stored(id)).toEqual([]);
      const job = await getJob(app(), id);
      expect(job.events).toEqual([
        { type: "deferred", at: job.createdAt },
        { type: "started", at: job.startedAt, worker_id: worker },
        { type: "succeeded", at: job.finishedAt },
      ]);
    });

    it("keeps every attempt in order across a retry", async () => {
      const worker = await registerWorker(app());
      const id = await defer();
      const first = await fetchOne(worker);
      await jm().failJob(first, { status: "todo", error, retry: { at: new Date(Date.now() - 1000) } });
      const second = await fetchOne(worker);
      expect(second).toMatchObject({ id, run: first.run + 1 });
      await jm().completeJobs([{ id, run: second.run, result: null }]);
      const job = await getJob(app(), id);
      expect(eventTypes(job)).toEqual(["deferred", "started", "deferred_for_retry", "started", "succeeded"]);
      expect(job.events[1]).toMatchObject({ at: first.startedAt, worker_id: worker });
      expect(job.events[3]).toMatchObject({ at: second.startedAt, worker_id: worker });
    });

    it("records an abort request after the start it belongs to, and that start once", async () => {
      const worker = await registerWorker(app());
      const [a, b] = [await defer(), await defer()];
      await jm().fetchJobs(worker, null, 2);
      await jm().cancelJob(a, { abort: true });
      await jm().cancelJob(b, { abort: true });
      expect(eventTypes(await getJob(app(), a))).toEqual(["deferred", "started", "abort_requested"]);
      // The task finished anyway, or gave up.
      await complete(a);
      await jm().failJob(await runOf(b), { status: "aborted", error });
      expect(eventTypes(await getJob(app(), a))).toEqual([
        "deferred",
        "started",
        "abort_requested",
        "succeeded",
      ]);
      expect(eventTypes(await getJob(app(), b))).toEqual([
        "deferred",
        "started",
        "abort_requested",
        "aborted",
      ]);
    });

    it("stores the derived events before a retry by hand, a stalled retry or a release", async () => {
      const worker = await registerWorker(app());
      const [done, stalled, released] = [await defer(), await defer(), await defer()];
      await jm().fetchJobs(worker, null, 3);
      await complete(done);
      await jm().retryJob(done);
      await jm().retryJob(await getJob(app(), stalled));
      await jm().releaseJobs([await runOf(released)]);
      expect(eventTypes(await getJob(app(), done))).toEqual(["deferred", "started", "succeeded", "retried"]);
      expect(eventTypes(await getJob(app(), stalled))).toEqual(["deferred", "started", "retried"]);
      expect(eventTypes(await getJob(app(), released))).toEqual(["deferred", "started", "released"]);
      // Each runs again: its new start is derived again, after what was stored.
      await jm().fetchJobs(worker, null, 3);
      for (const id of [done, stalled, released])
        expect(eventTypes(await getJob(app(), id)).slice(-2)).toEqual([(await stored(id)).at(-1), "started"]);
    });
  });

  describe("completion guards", () => {
    it("completeJobs stores results and touches only jobs still doing the run given", async () => {
      const worker = await registerWorker(app(), "w1");
      const [a, b, c] = [await defer(), await defer(), await defer()];
      const claimed = await jm().fetchJobs(worker, null, 2);
      const runA = claimed.find((j) => j.id === a)!.run;
      const runB = claimed.find((j) => j.id === b)!.run;
      expect(runA).toBe(1);
      // Another run's outcome (an earlier or a later claim) changes nothing.
      expect(await jm().completeJobs([{ id: a, run: runA - 1, result: 1 }])).toEqual([]);
      expect(await jm().completeJobs([{ id: a, run: runA + 1, result: 1 }])).toEqual([]);
      expect(await getJob(app(), a)).toMatchObject({ status: "doing", result: null, run: runA });
      // A todo job cannot be completed either, whatever run is named.
      expect(await jm().completeJobs([{ id: c, run: 0, result: 1 }])).toEqual([]);
      expect(await jm().completeJobs([{ id: c, run: 1, result: 1 }])).toEqual([]);
      expect((await getJob(app(), c)).status).toBe("todo");

      // In one batch, the stale entry is left out and the others are finished.
      const done = await jm().completeJobs([
        { id: a, run: runA, result: { ok: [1, "two"] } },
        { id: c, run: 1, result: "stale" },
        { id: b, run: runB, result: null },
      ]);
      expect([...done].sort((x, y) => x - y)).toEqual([a, b]);
      expect((await getJob(app(), c)).status).toBe("todo");
      const job = await getJob(app(), a);
      // The worker that ran it stays on the row: its history's "started" reports it.
      expect(job).toMatchObject({ status: "succeeded", result: { ok: [1, "two"] }, workerId: worker });
      expect(job.finishedAt).toBeInstanceOf(Date);
      expect(eventTypes(job)).toEqual(["deferred", "started", "succeeded"]);
      // Completing twice does nothing.
      expect(await jm().completeJobs([{ id: a, run: runA, result: 2 }])).toEqual([]);
      expect((await getJob(app(), a)).result).toEqual({ ok: [1, "two"] });
    });

    it("completeJobs with deleteJobs removes the rows, and not another run's", async () => {
      const worker = await registerWorker(app());
      const a = await defer();
      const [claimed] = await jm().fetchJobs(worker, null, 1);
      expect(await jm().completeJobs([{ id: a, run: claimed!.run + 1, result: null }], true)).toEqual([]);
      expect((await getJob(app(), a)).status).toBe("doing");
      expect(await jm().completeJobs([{ id: a, run: claimed!.run, result: null }], true)).toEqual([a]);
      expect(await jm().getJob(a)).toBeNull();
    });

    it("failJob with another run's number does nothing", async () => {
      const worker = await registerWorker(app(), "w1");
      const a = await defer();
      const [claimed] = await jm().fetchJobs(worker, null, 1);
      const error = { name: "Error", message: "x" };
      for (const run of [claimed!.run - 1, claimed!.run + 1]) {
        expect(await jm().failJob({ id: a, run }, { status: "failed", error })).toBeNull();
        expect(
          await jm().failJob({ id: a, run }, { status: "todo", error, retry: { at: new Date() } }),
        ).toBeNull();
        expect(await jm().failJob({ id: a, run }, { status: "failed", error, delete: true })).toBeNull();
      }
      expect(await getJob(app(), a)).toMatchObject({ status: "doing", error: null, run: claimed!.run });
      expect(await jm().failJob(claimed!, { status: "failed", error })).toBe("failed");
      const job = await getJob(app(), a);
      expect(job).toMatchObject({ status: "failed", error, workerId: worker });
      expect(job.finishedAt).toBeInstanceOf(Date);
      expect(job.events.at(-1)).toMatchObject({ type: "failed", error });
      expect(await jm().failJob(claimed!, { status: "failed", error })).toBeNull();
    });

    it("failJob with status todo schedules a retry, optionally onto a new queue, priority and lock", async () => {
      const worker = await registerWorker(app());
      const a = await defer({ queue: "q1", lock: "old" });
      const [first] = await jm().fetchJobs(worker, null, 1);
      const at = future();
      const error = { name: "TypeError", message: "nope", stack: "at x" };
      expect(await jm().failJob(first!, { status: "todo", error, retry: { at } })).toBe("todo");
      let job = await getJob(app(), a);
      expect(job).toMatchObject({ status: "todo", scheduledAt: at, workerId: null, attempts: 1, error });
      expect(job.events.at(-1)).toMatchObject({ type: "deferred_for_retry", error });
      expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);

      await sql(app(), "UPDATE {schema}.jobs SET scheduled_at = now() - interval '1 second' WHERE id = $1", [
        a,
      ]);
      const [again] = await jm().fetchJobs(worker, null, 10);
      expect(again).toMatchObject({ id: a, attempts: 2, run: first!.run + 1 });
      expect(
        await jm().failJob(again!, {
          status: "todo",
          error,
          retry: { at: new Date(Date.now() - 1000), queue: "q2", priority: 9, lock: "new" },
        }),
      ).toBe("todo");
      job = await getJob(app(), a);
      expect(job).toMatchObject({ status: "todo", queue: "q2", priority: 9, lock: "new" });
      expect(await jm().fetchJobs(worker, ["q1"], 10)).toEqual([]);
      expect(idsOf(await jm().fetchJobs(worker, ["q2"], 10))).toEqual([a]);
    });

    it("failJob with delete removes the job", async () => {
      const worker = await registerWorker(app());
      const a = await defer();
      const [claimed] = await jm().fetchJobs(worker, null, 1);
      expect(
        await jm().failJob(claimed!, { status: "failed", error: { name: "E", message: "m" }, delete: true }),
      ).toBe("failed");
      expect(await jm().getJob(a)).toBeNull();
    });

    it("a retry whose queueing lock was taken by a newer todo job drops it instead of failing", async () => {
      const worker = await registerWorker(app());
      const deferrer = app().configureTask("t", { allowUnknown: true, queueingLock: "q" });
      const a = await deferrer.defer({});
      const [claimed] = await jm().fetchJobs(worker, null, 1);
      const b = await deferrer.defer({});
      expect(
        await jm().failJob(claimed!, {
          status: "todo",
          error: { name: "E", message: "m" },
          retry: { at: new Date() },
        }),
      ).toBe("todo");
      expect(await getJob(app(), a)).toMatchObject({ status: "todo", queueingLock: null });
      expect(await getJob(app(), b)).toMatchObject({ status: "todo", queueingLock: "q" });
    });
  });

  it.runIf(backend === "pg")(
    "concurrent fetchers never share a job nor run two jobs of one lock",
    async () => {
      const LOCKS = 20;
      const JOBS = 200;
      const url = ctx.t.db.url!;
      // Random priorities within a lock: the expected order is priority desc, then id asc.
      const specs = Array.from({ length: JOBS }, (_, i) => ({
        lock: i % 5 === 4 ? undefined : `L${i % LOCKS}`,
        priority: (i * 7) % 3,
      }));
      const ids: number[] = [];
      for (const spec of specs) ids.push(await defer(spec));

      const apps = [0, 1].map(
        () =>
          new App({
            connector: new PgConnector({ connectionString: url, poolConfig: { max: 4 } }),
            logger: silentLogger,
          }),
      );
      await Promise.all(apps.map((a) => a.open()));
      try {
        const seen = new Map<number, number>();
        const fetchedOrder = new Map<string, number[]>();
        const holding = new Set<string>();
        const violations: string[] = [];

        const loop = async (fetcher: App, name: string) => {
          const worker = await registerWorker(fetcher, name);
          let idle = 0;
          while (idle < 3) {
            const jobs: Job[] = await fetcher.jobManager.fetchJobs(worker, null, 5);
            if (jobs.length === 0) {
              idle++;
              await new Promise((r) => setTimeout(r, 5));
              continue;
            }
            idle = 0;
            for (const job of jobs) {
              seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
              if (job.lock) {
                if (holding.has(job.lock))
                  violations.push(`lock ${job.lock} fetched twice at once (${job.id})`);
                holding.add(job.lock);
                fetchedOrder.set(job.lock, [...(fetchedOrder.get(job.lock) ?? []), job.id]);
              }
            }
            // Hold the jobs a moment so overlapping claims would show.
            await new Promise((r) => setImmediate(r));
            // Released before completing: any fetch that sees the lock free commits after this.
            for (const job of jobs) if (job.lock) holding.delete(job.lock);
            await fetcher.jobManager.completeJobs(jobs.map((j) => ({ id: j.id, run: j.run, result: null })));
          }
        };
        await Promise.all(apps.flatMap((a, i) => [loop(a, `app${i}-a`), loop(a, `app${i}-b`)]));

        expect(violations).toEqual([]);
        expect([...seen.keys()].sort((x, y) => x - y)).toEqual(ids);
        expect([...seen.values()].every((count) => count === 1)).toBe(true);
        for (let l = 0; l < LOCKS; l++) {
          const lock = `L${l}`;
          const expected = ids
            .map((id, i) => ({ id, ...specs[i]! }))
            .filter((s) => s.lock === lock)
            .sort((x, y) => y.priority - x.priority || x.id - y.id)
            .map((s) => s.id);
          expect(fetchedOrder.get(lock) ?? [], lock).toEqual(expected);
        }
        expect(await jm().listJobs({ status: ["todo", "doing"] })).toEqual([]);
      } finally {
        await Promise.all(apps.map((a) => a.close()));
      }
    },
  );
});
