import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { proc, skipDb, useTestDatabase } from "./helpers.js";

const MJS = "test/fixtures/app.mjs";
const TS = "test/fixtures/app.ts";

describe.skipIf(skipDb)("proc defer and app modules", () => {
  const t = useTestDatabase();

  describe("defer", () => {
    it("defers a task of the app and prints the id alone", async () => {
      const r = await proc(["defer", "send_email", '{"to":"a@b.c"}', "--app", MJS, "--priority", "5"], t.env);
      expect(r).toMatchObject({ code: 0, stderr: "" });
      const id = Number(r.stdout.trim());
      const job = await t.db.app.jobManager.getJob(id);
      expect(job).toMatchObject({ task: "send_email", queue: "emails", priority: 5, args: { to: "a@b.c" } });
    });

    it("loads a TypeScript app exported as default, and prints JSON with --json", async () => {
      const r = await proc(["defer", "add", '{"a":1,"b":2}', "--app", TS, "--json"], t.env);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out).toMatchObject({ task: "add", queue: "default" });
      expect((await t.db.app.jobManager.getJob(out.id))?.args).toEqual({ a: 1, b: 2 });
    });

    it("takes options from PROC_* variables, flags winning", async () => {
      const r = await proc(["defer", "send_email", "--lock", "flag"], {
        ...t.env,
        PROC_APP: MJS,
        PROC_DEFER_QUEUE: "from_env",
        PROC_DEFER_LOCK: "t.env",
        PROC_JSON: "1",
      });
      expect(r.code).toBe(0);
      const job = await t.db.app.jobManager.getJob(JSON.parse(r.stdout).id);
      expect(job).toMatchObject({ queue: "from_env", lock: "flag", args: {} });
    });

    it("schedules with --in and --at", async () => {
      const inR = await proc(["defer", "later", "--unknown", "--in", "3600"], t.env);
      const inJob = await t.db.app.jobManager.getJob(Number(inR.stdout));
      expect(inJob!.scheduledAt!.getTime()).toBeGreaterThan(Date.now() + 3_500_000);
      const atR = await proc(["defer", "later", "--unknown", "--at", "2040-01-02T03:04:05Z"], t.env);
      const atJob = await t.db.app.jobManager.getJob(Number(atR.stdout));
      expect(atJob!.scheduledAt!.toISOString()).toBe("2040-01-02T03:04:05.000Z");
    });

    it("loads a CommonJS app (module.exports = { app })", async () => {
      const r = await proc(["defer", "from_cjs", "--app", "test/fixtures/app.cjs"], t.env);
      expect(r.code).toBe(0);
      expect((await t.db.app.jobManager.getJob(Number(r.stdout)))?.task).toBe("from_cjs");
    });

    it("defers an unregistered task by name with --unknown, DATABASE_URL alone", async () => {
      const r = await proc(["defer", "elsewhere", '{"x":1}', "--unknown"], t.env);
      expect(r.code).toBe(0);
      expect((await t.db.app.jobManager.getJob(Number(r.stdout)))?.task).toBe("elsewhere");
    });

    it("rejects args that are not JSON, quoting the parse error", async () => {
      const r = await proc(["defer", "send_email", "{to: 1}", "--app", MJS], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: json-args is not valid JSON \(.*position 1.*\); pass an object/);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stdout).toBe("");
    });

    it("rejects JSON that is not an object", async () => {
      const r = await proc(["defer", "send_email", "[1]", "--app", MJS], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("json-args must be a JSON object");
      expect(r.stderr).toContain("not an array");
    });

    it("names the closest registered tasks for an unknown task and suggests --unknown", async () => {
      const r = await proc(["defer", "send_emial", "--app", MJS], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('no task named "send_emial"');
      expect(r.stderr).toContain('did you mean "send_email"?');
      expect(r.stderr).toContain("--unknown");
      expect(r.stderr).not.toContain("    at ");
    });

    it("lists the registered tasks when no name is close, and says why without --app", async () => {
      const far = await proc(["defer", "zzzzzzzzzz", "--app", MJS], t.env);
      expect(far.stderr).toContain("registered tasks: send_email, sleep, fail.");
      const noApp = await proc(["defer", "send_email"], t.env);
      expect(noApp.code).toBe(1);
      expect(noApp.stderr).toContain("no --app was given");
      expect(noApp.stderr).toContain("--unknown");
    });

    it("refuses a second job with a taken queueing lock, unless --ignore-already-enqueued", async () => {
      const args = ["defer", "send_email", "--app", MJS, "--queueing-lock", "mail:1"];
      expect((await proc(args, t.env)).code).toBe(0);
      const again = await proc(args, t.env);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('queueing lock "mail:1" is already waiting');
      expect(again.stderr).toContain("--ignore-already-enqueued");
      const ignored = await proc([...args, "--ignore-already-enqueued"], t.env);
      expect(ignored).toMatchObject({ code: 0, stdout: "" });
      expect(ignored.stderr).toMatch(/^note: a job with queueing lock "mail:1" is already waiting/);
      const json = await proc([...args, "--ignore-already-enqueued", "--json"], t.env);
      expect(JSON.parse(json.stdout)).toEqual({ id: null, alreadyEnqueued: true, queueingLock: "mail:1" });
    });

    it("--on-conflict ignore prints the waiting job's id; replace gives it the new args", async () => {
      const args = ["defer", "send_email", "--app", MJS, "--queueing-lock", "mail:oc"];
      const first = Number((await proc([...args, '{"to":"a"}'], t.env)).stdout.trim());
      const ignored = await proc([...args, '{"to":"b"}', "--on-conflict", "ignore"], t.env);
      expect(ignored).toMatchObject({ code: 0, stdout: `${first}\n` });
      expect((await t.db.app.jobManager.getJob(first))?.args).toEqual({ to: "a" });
      const replaced = await proc([...args, '{"to":"c"}', "--on-conflict", "replace", "--in", "60"], t.env);
      expect(replaced).toMatchObject({ code: 0, stdout: `${first}\n` });
      const job = await t.db.app.jobManager.getJob(first);
      expect(job?.args).toEqual({ to: "c" });
      expect(job?.scheduledAt?.getTime()).toBeGreaterThan(Date.now() + 50_000);
      const bad = await proc([...args, "--on-conflict", "merge"], t.env);
      expect(bad.code).toBe(2);
    });

    it("reports invalid job options from core as a user error", async () => {
      const r = await proc(["defer", "x", "--unknown", "--priority", "99999999999"], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: invalid job options: priority/);
    });
  });

  describe("app modules", () => {
    it("says what a module without an app exports", async () => {
      const r = await proc(["queues", "--app", "test/fixtures/no-app.mjs"], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("has no proc App as `app` or default export");
      expect(r.stderr).toContain("it exports answer (number), helper (function)");
    });

    it("reports a module that fails to load, with the stack only under -v", async () => {
      const r = await proc(["queues", "--app", "test/fixtures/broken.mjs"], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        "could not load the app module test/fixtures/broken.mjs: cannot read config.json",
      );
      expect(r.stderr).not.toContain("broken.mjs:2");
      const verbose = await proc(["queues", "--app", "test/fixtures/broken.mjs", "-v"], t.env);
      expect(verbose.stderr).toContain("broken.mjs:2");
    });

    it("points at a syntax error by file, line and column without -v, in TypeScript and JavaScript", async () => {
      // Written at test time: a fixture file with a syntax error would break the linter.
      const dir = mkdtempSync(join(tmpdir(), "proc-cli-syntax-"));
      writeFileSync(join(dir, "app.ts"), "export const x: number = 1;\nexport const app = {;\n");
      writeFileSync(join(dir, "app.mjs"), "export const x = 1;\nexport const app = {\n  a: 1,,\n};\n");
      const ts = await proc(["queues", "--app", join(dir, "app.ts")], t.env);
      expect(ts.code).toBe(1);
      expect(ts.stderr).toContain(`${join(dir, "app.ts")}:2:21: Expected identifier but found ";"`);
      const js = await proc(["queues", "--app", join(dir, "app.mjs")], t.env);
      expect(js.code).toBe(1);
      expect(js.stderr).toContain(`${join(dir, "app.mjs")}:3:8: Unexpected token ','`);
    });

    it("reports a missing module file", async () => {
      const r = await proc(["queues", "--app", "nope.mjs"], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("cannot find the app module nope.mjs");
    });

    it("needs the app for the worker", async () => {
      const r = await proc(["worker"], t.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("pass --app <module> (or set PROC_APP)");
    });
  });
});
