import { describe, expect, it } from "vitest";
import { proc, skipDb, start, useTestDatabase } from "./helpers.js";

describe.skipIf(skipDb)("proc worker", () => {
  const t = useTestDatabase();

  it("--one-shot runs the ready jobs of the chosen queues, then exits 0, logging JSON lines", async () => {
    const email = Number(
      (await proc(["defer", "send_email", '{"to":"x"}', "--app", "test/fixtures/app.mjs"], t.env)).stdout,
    );
    const other = Number(
      (await proc(["defer", "send_email", "--app", "test/fixtures/app.mjs", "--queue", "elsewhere"], t.env))
        .stdout,
    );
    const r = await proc(
      ["worker", "--app", "test/fixtures/app.mjs", "--one-shot", "-q", "emails", "-c", "2"],
      t.env,
    );
    expect(r.code).toBe(0);
    const lines = r.stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toContainEqual(
      expect.objectContaining({ action: "start_worker", queues: ["emails"], concurrency: 2 }),
    );
    expect(lines).toContainEqual(expect.objectContaining({ action: "job_success", jobId: email }));
    expect(await t.db.app.jobManager.getJob(email)).toMatchObject({
      status: "succeeded",
      result: { sent: "x" },
    });
    expect((await t.db.app.jobManager.getJob(other))?.status).toBe("todo");
  });

  it("runs a TypeScript app's tasks, options read from PROC_WORKER_* variables", async () => {
    const id = Number(
      (await proc(["defer", "add", '{"a":2,"b":3}', "--app", "test/fixtures/app.ts"], t.env)).stdout,
    );
    const r = await proc(["worker", "--quiet"], {
      ...t.env,
      PROC_APP: "test/fixtures/app.ts",
      PROC_WORKER_ONE_SHOT: "true",
      PROC_WORKER_QUEUES: "default",
      PROC_WORKER_NAME: "from-t.env",
      PROC_WORKER_DELETE_JOBS: "successful",
    });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    // Deleted on success, as PROC_WORKER_DELETE_JOBS asked.
    expect(await t.db.app.jobManager.getJob(id)).toBeNull();
  });

  it("writes readable log lines with --log-format pretty", async () => {
    const r = await proc(
      ["worker", "--app", "test/fixtures/app.mjs", "--one-shot", "-q", "none", "--log-format", "pretty"],
      t.env,
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^\S+Z INFO {2}\[start_worker\] worker \S+ started /m);
  });

  it("rejects malformed worker options as usage errors", async () => {
    const r = await proc(["worker", "--app", "test/fixtures/app.mjs", "-c", "0"], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid value "0" for -c: expected an integer ≥ 1');
    const env2 = await proc(["worker", "--app", "test/fixtures/app.mjs"], {
      ...t.env,
      PROC_WORKER_DELETE_JOBS: "sometimes",
    });
    expect(env2.code).toBe(2);
    expect(env2.stderr).toContain("for PROC_WORKER_DELETE_JOBS: expected one of never, successful, always");
  });

  it("stops gracefully on SIGTERM: the running job finishes, the worker unregisters, exit 0", async () => {
    const child = start(
      [
        "worker",
        "--app",
        "test/fixtures/app.mjs",
        "--name",
        "graceful",
        "--log-format",
        "json",
        "--poll-interval",
        "0.5",
      ],
      t.env,
    );
    await child.waitForStderr('"action":"start_worker"');
    const listed = JSON.parse((await proc(["workers", "--json"], t.env)).stdout);
    expect(listed).toContainEqual(expect.objectContaining({ name: "graceful" }));
    const id = Number(
      (await proc(["defer", "sleep", '{"ms":1500}', "--app", "test/fixtures/app.mjs"], t.env)).stdout,
    );
    await child.waitForStderr(`"jobId":${id}`);
    child.kill("SIGTERM");
    const r = await child.done;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('"action":"signal_graceful"');
    expect(await t.db.app.jobManager.getJob(id)).toMatchObject({
      status: "succeeded",
      result: { slept: 1500 },
    });
    const after = JSON.parse((await proc(["workers", "--json"], t.env)).stdout);
    expect(after).not.toContainEqual(expect.objectContaining({ name: "graceful" }));
  });
});
