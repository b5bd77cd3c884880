import { beforeAll, describe, expect, it } from "vitest";
import { proc, skipDb, useTestDatabase } from "./helpers.js";

const MJS = "test/fixtures/app.mjs";

describe.skipIf(skipDb)("proc jobs, queues, workers, stalled, healthcheck", () => {
  const t = useTestDatabase();

  describe("jobs", () => {
    let todo: number;
    let failed: number;

    beforeAll(async () => {
      const deferrer = t.db.app.configureTask("inspect_me", {
        allowUnknown: true,
        queue: "inspect",
        lock: "L",
      });
      todo = await deferrer.defer({ n: 1 });
      failed = await deferrer.defer({ n: 2 });
      const [claimed] = await t.db.app.jobManager.fetchJobs(
        await t.db.app.jobManager.registerWorker({
          name: "t",
          host: "h",
          pid: 1,
          queues: ["inspect"],
          concurrency: 1,
        }),
        ["inspect"],
        1,
      );
      // The lock makes the oldest job the one claimed; fail it so both statuses exist.
      expect(claimed?.id).toBe(todo);
      await t.db.app.jobManager.failJob(claimed!, {
        status: "failed",
        error: { name: "Error", message: "boom" },
      });
      [todo, failed] = [failed, todo];
    });

    it("lists jobs as a table, filtered", async () => {
      const r = await proc(["jobs", "list", "--queue", "inspect"], t.env);
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines[0]).toMatch(
        /^ID\s+STATUS\s+TASK\s+QUEUE\s+PRIORITY\s+LOCK\s+ATTEMPTS\s+SCHEDULED\s+CREATED\s+ARGS$/,
      );
      expect(lines).toHaveLength(3);
      expect(lines[1]).toMatch(
        new RegExp(`^\\s*${todo}\\s+todo\\s+inspect_me\\s+inspect\\s+0\\s+L\\s+0\\s+-\\s`),
      );
      expect(r.stdout).not.toContain("\x1b[");
      const json = await proc(
        ["jobs", "list", "--status", "failed", "--task", "inspect_me", "--json"],
        t.env,
      );
      expect(JSON.parse(json.stdout).map((j: { id: number }) => j.id)).toEqual([failed]);
      const limited = await proc(["jobs", "list", "--limit", "1", "--lock", "L", "--json"], t.env);
      expect(JSON.parse(limited.stdout)).toHaveLength(1);
      const none = await proc(["jobs", "list", "--queue", "nothing-here"], t.env);
      expect(none.stdout).toBe("no jobs match\n");
    });

    it("shows one job with its history", async () => {
      const r = await proc(["jobs", "show", String(failed)], t.env);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`job ${failed}  inspect_me  failed`);
      expect(r.stdout).toMatch(/error\s+Error: boom/);
      expect(r.stdout).toMatch(/history\n.*deferred\n.*started/);
      const json = JSON.parse((await proc(["jobs", "show", String(failed), "--json"], t.env)).stdout);
      expect(json).toMatchObject({ id: failed, status: "failed", error: { message: "boom" } });
    });

    it("says when a job does not exist", async () => {
      const r = await proc(["jobs", "show", "999999"], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("no job with id 999999; `proc jobs list`");
      const bad = await proc(["jobs", "show", "abc"], t.env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('invalid job id "abc"');
    });

    it("retries a failed job, and refuses a waiting one", async () => {
      const r = await proc(["jobs", "retry", String(failed)], t.env);
      expect(r).toMatchObject({ code: 0, stdout: `job ${failed} is todo again (was failed)\n` });
      expect((await t.db.app.jobManager.getJob(failed))?.status).toBe("todo");
      const again = await proc(["jobs", "retry", String(failed)], t.env);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain("is already waiting (todo); nothing to retry");
    });

    it("cancels a todo job, refuses a finished one", async () => {
      const r = await proc(["jobs", "cancel", String(todo)], t.env);
      expect(r).toMatchObject({ code: 0, stdout: `job ${todo} cancelled\n` });
      const again = await proc(["jobs", "cancel", String(todo)], t.env);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain("is cancelled, not waiting; nothing to cancel");
    });

    it("deletes a todo job with --delete", async () => {
      const id = await t.db.app.configureTask("doomed", { allowUnknown: true }).defer({});
      const r = await proc(["jobs", "cancel", String(id), "--delete", "--json"], t.env);
      expect(JSON.parse(r.stdout)).toEqual({ id, status: "deleted", previous: "todo" });
      expect(await t.db.app.jobManager.getJob(id)).toBeNull();
    });

    it("asks a running job to abort only with --abort", async () => {
      const id = await t.db.app.configureTask("running", { allowUnknown: true, queue: "run" }).defer({});
      const worker = await t.db.app.jobManager.registerWorker({
        name: "t",
        host: "h",
        pid: 1,
        queues: ["run"],
        concurrency: 1,
      });
      await t.db.app.jobManager.fetchJobs(worker, ["run"], 1);
      const refused = await proc(["jobs", "cancel", String(id)], t.env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("is running (doing), so it cannot be cancelled; pass --abort");
      const r = await proc(["jobs", "cancel", String(id), "--abort"], t.env);
      expect(r).toMatchObject({
        code: 0,
        stdout: `job ${id} is running; asked it to abort (its ctx.signal fires)\n`,
      });
      expect((await t.db.app.jobManager.getJob(id))?.abortRequested).toBe(true);
    });
  });

  it("proc queues counts jobs per queue and status", async () => {
    await t.db.app.configureTask("q", { allowUnknown: true, queue: "counted" }).batchDefer([{}, {}]);
    const r = await proc(["queues"], t.env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^QUEUE\s+TODO\s+DOING\s+SUCCEEDED\s+FAILED\s+CANCELLED\s+ABORTED\s+PAUSED\n/);
    expect(r.stdout).toMatch(/\ncounted\s+2\s+0\s+0\s+0\s+0\s+0\n/);
    const json = JSON.parse((await proc(["queues", "--json"], t.env)).stdout);
    expect(json).toContainEqual({
      name: "counted",
      todo: 2,
      doing: 0,
      succeeded: 0,
      failed: 0,
      cancelled: 0,
      aborted: 0,
      paused: false,
    });
  });

  it("proc workers lists registered workers", async () => {
    await t.db.app.jobManager.registerWorker({
      name: "listed",
      host: "box",
      pid: 4242,
      queues: ["a", "b"],
      concurrency: 3,
    });
    const r = await proc(["workers"], t.env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^\s*ID\s+NAME\s+HOST\s+PID\s+QUEUES\s+CONCURRENCY\s+DOING\s+STARTED\s+LAST HEARTBEAT\n/,
    );
    expect(r.stdout).toMatch(/listed\s+box\s+4242\s+a,b\s+3\s+0\s/);
    const json = JSON.parse((await proc(["workers", "--json"], t.env)).stdout);
    expect(json).toContainEqual(expect.objectContaining({ name: "listed", pid: 4242, queues: ["a", "b"] }));
  });

  it("proc stalled finds jobs whose worker stopped beating, and --retry puts them back", async () => {
    const id = await t.db.app.configureTask("stuck", { allowUnknown: true, queue: "stuck" }).defer({});
    const worker = await t.db.app.jobManager.registerWorker({
      name: "gone",
      host: "h",
      pid: 1,
      queues: ["stuck"],
      concurrency: 1,
    });
    await t.db.app.jobManager.fetchJobs(worker, ["stuck"], 1);
    const fresh = await proc(["stalled", "--queue", "stuck", "--json"], t.env);
    expect(JSON.parse(fresh.stdout)).toEqual([]);
    // A heartbeat older than 0 seconds: every doing job of that worker counts as stalled.
    const listed = await proc(["stalled", "--queue", "stuck", "--heartbeat-seconds", "0"], t.env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`\\n\\s*${id}\\s+doing\\s+stuck\\s`));
    const both = await proc(["stalled", "--heartbeat-seconds", "0", "--nb-seconds", "0"], t.env);
    expect(both.code).toBe(2);
    const retried = await proc(["stalled", "--task", "stuck", "--nb-seconds", "0", "--retry"], t.env);
    expect(retried).toMatchObject({ code: 0, stdout: `retried 1 stalled job(s): ${id}\n` });
    expect((await t.db.app.jobManager.getJob(id))?.status).toBe("todo");
    const none = await proc(["stalled", "--task", "stuck", "--nb-seconds", "0", "--retry"], t.env);
    expect(none.stdout).toBe("no stalled jobs\n");
  });

  it("proc healthcheck and proc schema status on a current schema", async () => {
    const r = await proc(["healthcheck"], t.env);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^ok: database reachable, schema "proc" at migration \d+\n$/);
    const json = JSON.parse((await proc(["healthcheck", "--json", "--app", MJS], t.env)).stdout);
    expect(json).toMatchObject({ ok: true, schema: "proc" });
    const status = await proc(["schema", "status"], t.env);
    expect(status.stdout).toMatch(/^schema "proc": up to date/);
  });
});
