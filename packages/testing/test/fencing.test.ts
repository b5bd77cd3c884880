// Issue 11, "a job runs at most once at a time", at the SQL level (migration 0002):
// every claim is a distinct run (Job.run), and a run's outcome, release or retry is
// written only while the job is still doing that run; heartbeats report lost runs;
// stalled detection does not count a silence that every worker shared; and the rules
// of locks and queueing locks that come with them.
import type { Job, NewJob, RunRef } from "@proc/core";
import { backends } from "@proc/testing";
import pg from "pg";
import { beforeEach, describe, expect, it } from "vitest";
import { claimRunOnDeadWorker } from "../src/fixtures.js";
import { eventTypes, getJob, idsOf, registerWorker, sql, useSharedApp } from "./helpers.js";

describe.each(backends())("fencing on %s", (backend) => {
  const ctx = useSharedApp(backend);
  const app = () => ctx.app;
  const jm = () => ctx.app.jobManager;

  // The shared database keeps `liveness` across tests: start each one as a database that
  // has heard no beat yet, so that no silence is recorded unless a test makes one.
  beforeEach(async () => {
    await sql(app(), "UPDATE {schema}.liveness SET last_heartbeat_at = NULL, silence_ended_at = NULL");
  });

  const defer = (
    options: { queue?: string; lock?: string; queueingLock?: string; scheduleAt?: Date } = {},
  ): Promise<number> =>
    app()
      .configureTask("t", { allowUnknown: true, ...options })
      .defer({});
  const future = () => new Date(Date.now() + 3_600_000);
  const error = { name: "Error", message: "boom" };
  const ref = (job: Job): RunRef => ({ id: job.id, run: job.run });

  /** Claim exactly job `id` (it must be the only ready one) on `worker`. */
  async function claim(worker: number, id: number): Promise<Job> {
    const fetched = await jm().fetchJobs(worker, null, 10);
    expect(idsOf(fetched)).toEqual([id]);
    return fetched[0]!;
  }

  /** Every way a worker writes what became of a run it holds. */
  const writes = {
    complete: async (run: RunRef) => (await jm().completeJobs([{ ...run, result: "done" }])).length > 0,
    fail: async (run: RunRef) => (await jm().failJob(run, { status: "failed", error })) !== null,
    abort: async (run: RunRef) => (await jm().failJob(run, { status: "aborted", error })) !== null,
    retry: async (run: RunRef) =>
      (await jm().failJob(run, { status: "todo", error, retry: { at: new Date() } })) !== null,
    release: async (run: RunRef) => (await jm().releaseJobs([run])).length > 0,
    "delete on completion": async (run: RunRef) =>
      (await jm().completeJobs([{ ...run, result: null }], true)).length > 0,
  };
  const expected: Record<keyof typeof writes, string | null> = {
    complete: "succeeded",
    fail: "failed",
    abort: "aborted",
    retry: "todo",
    release: "todo",
    "delete on completion": null,
  };
  const kinds = Object.keys(writes) as Array<keyof typeof writes>;

  describe("runs", () => {
    it("run counts claims: 0 before the first, +1 per claim, never restored by a release", async () => {
      const worker = await registerWorker(app());
      const id = await defer();
      expect(await getJob(app(), id)).toMatchObject({ run: 0, attempts: 0 });

      const first = await claim(worker, id);
      expect(first).toMatchObject({ run: 1, attempts: 1 });
      expect(await jm().releaseJobs([ref(first)])).toEqual([id]);
      // Attempts are given back with the claim; the run number is not.
      expect(await getJob(app(), id)).toMatchObject({ status: "todo", run: 1, attempts: 0 });

      const second = await claim(worker, id);
      expect(second).toMatchObject({ run: 2, attempts: 1 });
      expect(await jm().failJob(second, { status: "todo", error, retry: { at: new Date() } })).toBe("todo");
      expect(await getJob(app(), id)).toMatchObject({ status: "todo", run: 2, attempts: 1 });

      const third = await claim(worker, id);
      expect(third).toMatchObject({ run: 3, attempts: 2 });
      expect(await jm().retryJob(third)).toMatchObject({ status: "todo", run: 3, stalledCount: 1 });

      const fourth = await claim(worker, id);
      expect(fourth).toMatchObject({ run: 4, attempts: 3 });
      expect(await getJob(app(), id)).toMatchObject({ status: "doing", run: 4 });
      expect(await jm().workerDoingJobs(worker)).toEqual([{ id, run: 4 }]);
    });

    it("workerDoingJobs lists the runs a worker is doing, with their numbers", async () => {
      const [w1, w2] = [await registerWorker(app(), "w1"), await registerWorker(app(), "w2")];
      const [a, b] = [await defer(), await defer()];
      await jm().fetchJobs(w1, null, 2);
      expect([...(await jm().workerDoingJobs(w1))].sort((x, y) => x.id - y.id)).toEqual([
        { id: a, run: 1 },
        { id: b, run: 1 },
      ]);
      // Recovered, then claimed by another worker: it is that worker's run now.
      await jm().retryJob(await getJob(app(), b));
      expect(await claim(w2, b)).toMatchObject({ run: 2 });
      expect(await jm().workerDoingJobs(w1)).toEqual([{ id: a, run: 1 }]);
      expect(await jm().workerDoingJobs(w2)).toEqual([{ id: b, run: 2 }]);
    });

    it("a recovered run's complete, fail, abort, retry, release and delete are all refused and change nothing", async () => {
      const worker = await registerWorker(app());
      const id = await defer({ lock: "L", queueingLock: "ql" });
      const run = await claim(worker, id);
      expect(await jm().retryJob(run)).toMatchObject({ status: "todo", stalledCount: 1, run: run.run });
      const before = await getJob(app(), id);
      for (const k of kinds) expect(await writes[k](ref(run)), k).toBe(false);
      expect(await getJob(app(), id)).toEqual(before);
    });

    it.each(kinds)(
      "once claimed again by the same worker, the old run's writes are refused and the new run's %s is accepted",
      async (kind) => {
        const worker = await registerWorker(app());
        const id = await defer({ lock: "L", queueingLock: "ql" });
        const old = await claim(worker, id);
        await jm().retryJob(old);
        const current = await claim(worker, id);
        expect(current).toMatchObject({ workerId: worker, run: old.run + 1, attempts: 2 });

        const before = await getJob(app(), id);
        for (const k of kinds) expect(await writes[k](ref(old)), k).toBe(false);
        // Nor does a run that has not happened yet.
        for (const k of kinds) expect(await writes[k]({ id, run: current.run + 1 }), k).toBe(false);
        expect(await getJob(app(), id)).toEqual(before);

        expect(await writes[kind](ref(current))).toBe(true);
        const after = await jm().getJob(id);
        expect(after?.status ?? null).toBe(expected[kind]);
        if (after) expect(after.run).toBe(current.run);
        // And the run that was written cannot be written again.
        for (const k of kinds) expect(await writes[k](ref(current)), k).toBe(false);
      },
    );

    it("a run released and claimed again is refused too, without any recovery", async () => {
      const worker = await registerWorker(app());
      const id = await defer();
      const old = await claim(worker, id);
      await jm().releaseJobs([ref(old)]);
      const current = await claim(worker, id);
      expect(current.run).toBe(old.run + 1);
      expect(await jm().completeJobs([{ ...ref(old), result: "stale" }])).toEqual([]);
      expect(await jm().releaseJobs([ref(old)])).toEqual([]);
      expect(await getJob(app(), id)).toMatchObject({ status: "doing", run: current.run, result: null });
      expect(await jm().completeJobs([{ ...ref(current), result: "fresh" }])).toEqual([id]);
      expect(await getJob(app(), id)).toMatchObject({ status: "succeeded", result: "fresh" });
    });

    it("in a batch, only the runs still doing are completed or released", async () => {
      const worker = await registerWorker(app());
      const [a, b, c, d] = [await defer(), await defer(), await defer(), await defer()];
      const runs = new Map((await jm().fetchJobs(worker, null, 4)).map((j) => [j.id, j.run]));
      await jm().retryJob(await getJob(app(), b));
      await jm().retryJob(await getJob(app(), d));
      const done = await jm().completeJobs([
        { id: a, run: runs.get(a)!, result: 1 },
        { id: b, run: runs.get(b)!, result: 2 },
      ]);
      expect(done).toEqual([a]);
      expect(
        await jm().releaseJobs([
          { id: c, run: runs.get(c)! },
          { id: d, run: runs.get(d)! },
        ]),
      ).toEqual([c]);
      expect(await getJob(app(), a)).toMatchObject({ status: "succeeded", result: 1 });
      expect(await getJob(app(), b)).toMatchObject({ status: "todo", stalledCount: 1, result: null });
      expect(await getJob(app(), c)).toMatchObject({ status: "todo", stalledCount: 0, attempts: 0 });
      expect(await getJob(app(), d)).toMatchObject({ status: "todo", stalledCount: 1, attempts: 1 });
    });

    it("a stalled retry of a run that was recovered and claimed again does nothing", async () => {
      const [w1, w2] = [await registerWorker(app(), "w1"), await registerWorker(app(), "w2")];
      const id = await defer();
      const seen = await claim(w1, id);
      expect(await jm().retryJob(seen)).not.toBeNull();
      const current = await claim(w2, id);
      // A second recovery pass still holding the first run's Job, abort requested or not.
      expect(await jm().retryJob(seen)).toBeNull();
      await jm().cancelJob(id, { abort: true });
      expect(await jm().retryJob(seen)).toBeNull();
      expect(await getJob(app(), id)).toMatchObject({
        status: "doing",
        run: current.run,
        workerId: w2,
        stalledCount: 1,
        abortRequested: true,
      });
    });
  });

  describe("heartbeat", () => {
    it("reports lost runs and abort requests among the runs it is given, and nothing for runs that are fine", async () => {
      const worker = await registerWorker(app());
      const ids = [await defer(), await defer(), await defer(), await defer(), await defer()];
      const [fine, aborting, recovered, reclaimed, finished] = ids as [
        number,
        number,
        number,
        number,
        number,
      ];
      const runs = new Map(
        (await jm().fetchJobs(worker, null, 5)).map((j) => [j.id, { id: j.id, run: j.run }]),
      );
      const held = ids.map((id) => runs.get(id)!);
      expect(await jm().heartbeatWorker(worker, held)).toEqual({
        workerFound: true,
        abortJobIds: [],
        lostJobIds: [],
      });

      await jm().cancelJob(aborting, { abort: true });
      await jm().retryJob(reclaimed);
      const [again] = await jm().fetchJobs(worker, null, 1); // the same worker, a new run
      expect(again).toMatchObject({ id: reclaimed, run: runs.get(reclaimed)!.run + 1 });
      await jm().retryJob(recovered);
      await jm().completeJobs([{ ...runs.get(finished)!, result: null }]);

      expect(await jm().heartbeatWorker(worker, [...held, { id: 987_654_321, run: 1 }])).toEqual({
        workerFound: true,
        abortJobIds: [aborting],
        lostJobIds: [recovered, reclaimed, finished, 987_654_321],
      });
      // The new run of the reclaimed job is fine; the first two are still as they were.
      expect(await jm().heartbeatWorker(worker, [runs.get(fine)!, runs.get(aborting)!, ref(again!)])).toEqual(
        {
          workerFound: true,
          abortJobIds: [aborting],
          lostJobIds: [],
        },
      );
      // Whatever the worker id says: lost and aborted are a matter of runs.
      const other = await registerWorker(app(), "other");
      expect(await jm().heartbeatWorker(other, [runs.get(aborting)!, runs.get(recovered)!])).toEqual({
        workerFound: true,
        abortJobIds: [aborting],
        lostJobIds: [recovered],
      });
      // A pruned worker learns it, and still which of its runs are lost.
      await jm().unregisterWorker(worker);
      expect(await jm().heartbeatWorker(worker, [runs.get(fine)!, runs.get(recovered)!])).toEqual({
        workerFound: false,
        abortJobIds: [],
        lostJobIds: [recovered],
      });
    });
  });

  describe("silences", () => {
    type Liveness = { last_heartbeat_at: Date | null; silence_ended_at: Date | null };
    const liveness = async () =>
      (await sql<Liveness>(app(), "SELECT last_heartbeat_at, silence_ended_at FROM {schema}.liveness"))[0]!;
    const stalledIds = async (heartbeatSeconds: number) =>
      (await jm().getStalledJobs({ heartbeatSeconds })).map((j) => j.id);
    const backdateWorker = (worker: number, seconds: number) =>
      sql(
        app(),
        "UPDATE {schema}.workers SET last_heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1",
        [worker, seconds],
      );
    const backdateSilenceEnd = (seconds: number) =>
      sql(app(), "UPDATE {schema}.liveness SET silence_ended_at = now() - make_interval(secs => $1)", [
        seconds,
      ]);
    /** Every worker was cut off for a minute; then `worker` beats first. */
    async function sharedSilence(worker: number): Promise<void> {
      await app().connector.query(
        `UPDATE ${app().schema}.liveness SET last_heartbeat_at = now() - interval '60 seconds'`,
      );
      await jm().heartbeatWorker(worker, [], 11);
    }
    /** A worker holding a job, whose last beat was `seconds` ago. */
    async function silentWorker(seconds: number): Promise<{ worker: number; id: number }> {
      const worker = await registerWorker(app(), "silent");
      const id = await defer();
      await claim(worker, id);
      await backdateWorker(worker, seconds);
      return { worker, id };
    }

    it("a worker silent for 60 s is stalled and pruned when nobody else was silent", async () => {
      const live = await registerWorker(app(), "live");
      const { worker, id } = await silentWorker(60);
      await jm().heartbeatWorker(live, [], 11);
      expect(await stalledIds(30)).toEqual([id]);
      expect(await stalledIds(90)).toEqual([]);
      expect(await jm().pruneWorkers(90)).toEqual([]);
      expect(await jm().pruneWorkers(30)).toEqual([worker]);
    });

    it("after a shared silence, a worker is judged only on its silence since then", async () => {
      const live = await registerWorker(app(), "live");
      const { worker, id } = await silentWorker(60);
      expect(await stalledIds(30)).toEqual([id]);

      await sharedSilence(live);
      const { silence_ended_at: ended, last_heartbeat_at: last } = await liveness();
      expect(ended).toBeInstanceOf(Date);
      expect(ended).toEqual(last);
      // Its beat is a minute old, but the silence ended just now: not stalled, not pruned.
      expect(await stalledIds(30)).toEqual([]);
      expect(await stalledIds(5)).toEqual([]);
      expect(await jm().pruneWorkers(30)).toEqual([]);
      expect(await jm().pruneWorkers(5)).toEqual([]);

      // 20 s since the silence ended: judged against 10 s, not against 30 s.
      await backdateSilenceEnd(20);
      expect(await stalledIds(30)).toEqual([]);
      expect(await stalledIds(10)).toEqual([id]);
      expect(await jm().pruneWorkers(30)).toEqual([]);
      expect(await jm().pruneWorkers(10)).toEqual([worker]);
      // A worker that beat after the silence is judged on its own beat.
      expect(await jm().pruneWorkers(10)).toEqual([]);
      expect((await jm().listWorkers()).map((w) => w.id)).toEqual([live]);
    });

    it("a job whose worker row is gone is stalled, unless a shared silence ended recently", async () => {
      const live = await registerWorker(app(), "live");
      const { worker, id } = await silentWorker(0);
      await jm().unregisterWorker(worker);
      expect(await stalledIds(3600)).toEqual([id]);

      await sharedSilence(live);
      expect(await stalledIds(30)).toEqual([]);
      await backdateSilenceEnd(40);
      expect(await stalledIds(60)).toEqual([]);
      expect(await stalledIds(30)).toEqual([id]);
    });

    it("records a silence only after a gap longer than silenceSeconds, and none on a fresh database's first beat", async () => {
      const live = await registerWorker(app(), "live");
      const { id } = await silentWorker(60);
      // Fresh database: never heard a beat, so no silence to record.
      expect(await liveness()).toEqual({ last_heartbeat_at: null, silence_ended_at: null });
      await jm().heartbeatWorker(live, [], 11);
      const first = await liveness();
      expect(first.last_heartbeat_at).toBeInstanceOf(Date);
      expect(first.silence_ended_at).toBeNull();
      expect(await stalledIds(30)).toEqual([id]);

      // A gap of 60 s is no silence for workers that allow 120 s.
      await sql(app(), "UPDATE {schema}.liveness SET last_heartbeat_at = now() - interval '60 seconds'");
      await jm().heartbeatWorker(live, [], 120);
      const second = await liveness();
      expect(second.silence_ended_at).toBeNull();
      expect(second.last_heartbeat_at!.getTime()).toBeGreaterThanOrEqual(first.last_heartbeat_at!.getTime());
      expect(await stalledIds(30)).toEqual([id]);

      // Nor is a gap of 5 s for workers that allow 11 s.
      await sql(app(), "UPDATE {schema}.liveness SET last_heartbeat_at = now() - interval '5 seconds'");
      await jm().heartbeatWorker(live, [], 11);
      expect((await liveness()).silence_ended_at).toBeNull();
      expect(await stalledIds(30)).toEqual([id]);

      // A gap of 12 s is.
      await sql(app(), "UPDATE {schema}.liveness SET last_heartbeat_at = now() - interval '12 seconds'");
      await jm().heartbeatWorker(live, [], 11);
      expect((await liveness()).silence_ended_at).toBeInstanceOf(Date);
      expect(await stalledIds(30)).toEqual([]);
    });

    it("legacy nbSeconds mode ignores silences", async () => {
      const live = await registerWorker(app(), "live");
      const { id } = await silentWorker(60);
      await sql(app(), "UPDATE {schema}.jobs SET started_at = now() - interval '1 minute' WHERE id = $1", [
        id,
      ]);
      await sharedSilence(live);
      expect((await jm().getStalledJobs({ nbSeconds: 30 })).map((j) => j.id)).toEqual([id]);
    });
  });

  describe("abort", () => {
    it("a stalled run whose abort was requested ends aborted, not retried", async () => {
      const id = await defer();
      const { workerId, job } = await claimRunOnDeadWorker(app(), id);
      expect(await jm().cancelJob(id, { abort: true })).toBe("doing");
      const stalled = await jm().getStalledJobs({ heartbeatSeconds: 30 });
      expect(stalled.map((j) => j.id)).toEqual([id]);
      expect(stalled[0]!.run).toBe(job.run);

      const retried = await jm().retryJob(stalled[0]!);
      expect(retried).toMatchObject({ id, status: "aborted", stalledCount: 0, attempts: 1 });
      const after = await getJob(app(), id);
      expect(after).toMatchObject({ status: "aborted", error: { name: "JobAbortedError" } });
      expect(after.finishedAt).toBeInstanceOf(Date);
      expect(eventTypes(after)).toEqual(["deferred", "started", "abort_requested", "aborted"]);
      expect(after.events.at(-1)).toMatchObject({ type: "aborted", worker_id: workerId });
      expect(await jm().waitForJob(id, { timeoutMs: 1_000 })).toMatchObject({ status: "aborted" });

      // Not run again, and the dead run can write nothing.
      expect(await jm().fetchJobs(await registerWorker(app()), null, 10)).toEqual([]);
      expect(await jm().retryJob(stalled[0]!)).toBeNull();
      expect(await jm().completeJobs([{ ...ref(job), result: null }])).toEqual([]);
      expect((await getJob(app(), id)).status).toBe("aborted");
    });

    it("a stalled run without an abort request is retried as usual", async () => {
      const id = await defer();
      await claimRunOnDeadWorker(app(), id);
      const [stalled] = await jm().getStalledJobs({ heartbeatSeconds: 30 });
      expect(await jm().retryJob(stalled!)).toMatchObject({ id, status: "todo", stalledCount: 1 });
    });

    it("a released or retried run whose abort was requested ends aborted: the request is never lost", async () => {
      const worker = await registerWorker(app());
      const a = await defer();
      const [runA] = await jm().fetchJobs(worker, null, 1);
      expect(await jm().cancelJob(a, { abort: true })).toBe("doing");
      // A prefetched run given back unstarted (the worker stopped first).
      expect(await jm().releaseJobs([ref(runA!)])).toEqual([a]);
      expect(await getJob(app(), a)).toMatchObject({ status: "aborted", error: { name: "JobAbortedError" } });

      const b = await defer();
      const [runB] = await jm().fetchJobs(worker, null, 1);
      expect(await jm().cancelJob(b, { abort: true })).toBe("doing");
      // The run threw and its task retries: the abort request wins.
      const error = { name: "Error", message: "boom" };
      expect(await jm().failJob(ref(runB!), { status: "todo", error, retry: { at: new Date() } })).toBe(
        "aborted",
      );
      expect(await getJob(app(), b)).toMatchObject({ status: "aborted", error });
      expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
    });
  });

  describe("queueing locks", () => {
    it("a run released while a newer todo job holds its queueing lock goes back without it", async () => {
      const worker = await registerWorker(app());
      const old = await defer({ queueingLock: "q" });
      const run = await claim(worker, old);
      const newer = await defer({ queueingLock: "q" });
      expect(await jm().releaseJobs([ref(run)])).toEqual([old]);
      const released = await getJob(app(), old);
      expect(released).toMatchObject({
        status: "todo",
        queueingLock: null,
        stalledCount: 0,
        attempts: 0,
        workerId: null,
        run: run.run,
      });
      expect(released.events.at(-1)).toMatchObject({ type: "released", queueing_lock_dropped: true });
      expect(await getJob(app(), newer)).toMatchObject({ status: "todo", queueingLock: "q" });
    });

    it("a run released with nobody else holding its queueing lock keeps it", async () => {
      const worker = await registerWorker(app());
      const id = await defer({ queueingLock: "q" });
      await jm().releaseJobs([ref(await claim(worker, id))]);
      expect(await getJob(app(), id)).toMatchObject({ status: "todo", queueingLock: "q" });
    });

    it("two runs sharing a queueing lock released together both go back, one keeping it", async () => {
      const worker = await registerWorker(app());
      const a = await defer({ queueingLock: "q" });
      const runA = await claim(worker, a);
      const b = await defer({ queueingLock: "q" }); // allowed: a doing job holds no queueing lock
      const runB = await claim(worker, b);
      expect([...(await jm().releaseJobs([ref(runA), ref(runB)]))].sort((x, y) => x - y)).toEqual([a, b]);
      const jobs = [await getJob(app(), a), await getJob(app(), b)];
      expect(jobs.map((j) => j.status)).toEqual(["todo", "todo"]);
      expect(jobs.map((j) => j.queueingLock).filter((q) => q === "q")).toHaveLength(1);
      expect(jobs.map((j) => j.queueingLock).filter((q) => q === null)).toHaveLength(1);
      expect(jobs.map((j) => j.attempts)).toEqual([0, 0]);
    });

    it.runIf(backend === "pg")(
      "a retry does not wait for a user's transaction holding a todo job of its queueing lock: it drops the lock",
      async () => {
        const worker = await registerWorker(app());
        const deferrer = app().configureTask("t", { allowUnknown: true, queueingLock: "q" });
        const old = await deferrer.defer({});
        const run = await claim(worker, old);
        const client = new pg.Client({ connectionString: ctx.t.db.url! });
        await client.connect();
        let committed = false;
        try {
          await client.query("BEGIN");
          // Allowed (the old job is doing), but not committed: its index entry is in doubt.
          const newer = await deferrer.defer({}, { connection: client });
          const outcome = await Promise.race([
            jm().failJob(run, { status: "todo", error, retry: { at: new Date() } }),
            new Promise((resolve) => setTimeout(() => resolve("still waiting after 15 s"), 15_000)),
          ]);
          expect(outcome).toBe("todo");
          expect(await getJob(app(), old)).toMatchObject({
            status: "todo",
            queueingLock: null,
            run: run.run,
          });
          await client.query("COMMIT");
          committed = true;
          expect(await getJob(app(), newer)).toMatchObject({ status: "todo", queueingLock: "q" });
          expect(idsOf(await jm().listJobs({ status: "todo" }))).toEqual([old, newer]);
        } finally {
          if (!committed) await client.query("ROLLBACK").catch(() => {});
          await client.end();
        }
      },
    );
  });

  describe("locks", () => {
    it("a run retried with a wait keeps its place: later ready jobs of its lock wait for it", async () => {
      const worker = await registerWorker(app());
      const first = await defer({ lock: "L" });
      const later = await defer({ lock: "L" });
      const free = await defer();
      const claimed = await jm().fetchJobs(worker, null, 10);
      expect(idsOf(claimed)).toEqual([first, free]);
      const run = claimed.find((j) => j.id === first)!;
      expect(await jm().failJob(run, { status: "todo", error, retry: { at: future() } })).toBe("todo");
      expect(await jm().fetchJobs(worker, null, 10)).toEqual([]);
      expect(await jm().listLocks()).toEqual([{ name: "L", todo: 2, doing: 0 }]);
      // Once due, it runs first, then the later job.
      await sql(app(), "UPDATE {schema}.jobs SET scheduled_at = now() - interval '1 second' WHERE id = $1", [
        first,
      ]);
      const again = await claim(worker, first);
      await jm().completeJobs([{ ...ref(again), result: null }]);
      await claim(worker, later);
    });

    it("a job deferred with a future schedule does not block later ready jobs of its lock", async () => {
      const worker = await registerWorker(app());
      const scheduled = await defer({ lock: "L", scheduleAt: future() });
      const ready = await defer({ lock: "L" });
      await claim(worker, ready);
      expect((await getJob(app(), scheduled)).status).toBe("todo");
    });
  });

  describe("notifications", () => {
    const newJob = (queue: string, scheduledAt: Date | null): NewJob => ({
      task: "t",
      queue,
      priority: 0,
      lock: null,
      queueingLock: null,
      args: {},
      scheduledAt,
    });

    it("a batch mixing a ready job and a future one notifies without `at`; an all-future batch with the earliest", async () => {
      const payloads: Array<{ type: string; queue: string; at?: string | null }> = [];
      const listener = await app().connector.listen({
        channels: [jm().channel],
        onNotification: (n) => payloads.push(JSON.parse(n.payload)),
      });
      try {
        const soon = new Date(Date.now() + 60_000);
        await jm().deferJobs([newJob("mixed", future()), newJob("mixed", null), newJob("mixed", soon)]);
        await jm().deferJobs([newJob("later", future()), newJob("later", soon)]);
        const deadline = Date.now() + 10_000;
        while (!(payloads.some((p) => p.queue === "mixed") && payloads.some((p) => p.queue === "later"))) {
          if (Date.now() > deadline)
            throw new Error(`notifications not received: ${JSON.stringify(payloads)}`);
          await new Promise((r) => setTimeout(r, 10));
        }
        const mixed = payloads.filter((p) => p.queue === "mixed");
        expect(mixed).toHaveLength(1);
        expect(mixed[0]!.type).toBe("job");
        expect(mixed[0]!.at ?? null).toBeNull();
        const later = payloads.filter((p) => p.queue === "later");
        expect(later).toHaveLength(1);
        expect(new Date(later[0]!.at!).getTime()).toBe(soon.getTime());
      } finally {
        await listener.close();
      }
    });
  });
});
