// `proc metrics` and `proc worker --metrics-port`: Prometheus endpoints over the real database,
// stopped by SIGTERM.
import { describe, expect, it } from "vitest";
import { skipDb, start, useTestDatabase } from "./helpers.js";

const MJS = "test/fixtures/app.mjs";

function metricsUrl(stderr: string): string {
  const match = /serving metrics at (http:\/\/[^\s"]+\/metrics)/.exec(stderr);
  if (!match) throw new Error(`no metrics URL in:\n${stderr}`);
  return match[1]!;
}

describe.skipIf(skipDb)("proc metrics", () => {
  const t = useTestDatabase();

  it("serves the queue gauges at /metrics, 404 elsewhere, and stops on SIGTERM", async () => {
    await t.db.app.configureTask("report", { allowUnknown: true, queue: "reports" }).batchDefer([{}, {}]);
    const child = start(["metrics", "--port", "0"], t.env);
    await child.waitForStderr("serving metrics at");
    const url = metricsUrl(child.stderr());
    const body = await (await fetch(url)).text();
    expect(body).toMatch(/^proc_queue_jobs\{proc_queue="reports",proc_status="todo"[^}]*\} 2$/m);
    expect(body).toMatch(/^proc_queue_jobs\{proc_queue="reports",proc_status="ready"[^}]*\} 2$/m);
    expect((await fetch(url.replace("/metrics", "/other"))).status).toBe(404);
    child.kill("SIGTERM");
    expect((await child.done).code).toBe(0);
  });

  it("worker --metrics-port serves the worker's counters", async () => {
    await t.db.app
      .configureTask("send_email", { allowUnknown: true, queue: "emails" })
      .defer({ to: "m@x.y" });
    const child = start(["worker", "--app", MJS, "--metrics-port", "0", "--poll-interval", "0.2"], t.env);
    await child.waitForStderr("serving metrics at");
    const url = metricsUrl(child.stderr());
    let body = "";
    for (let i = 0; i < 100 && !/^proc_jobs_succeeded_total\{/m.test(body); i++) {
      await new Promise((r) => setTimeout(r, 100));
      body = await (await fetch(url)).text();
    }
    expect(body).toMatch(/^proc_jobs_succeeded_total\{proc_queue="emails",proc_task="send_email"[^}]*\} 1$/m);
    child.kill("SIGTERM");
    expect((await child.done).code).toBe(0);
  });

  it("worker --probes-port serves /livez and /readyz; readiness fails from the first SIGTERM", async () => {
    const child = start(
      ["worker", "--app", MJS, "--probes-port", "0", "--log-format", "json", "--shutdown-timeout", "30"],
      t.env,
    );
    await child.waitForStderr('"probes_listening"');
    const line = child
      .stderr()
      .split("\n")
      .find((l) => l.includes('"probes_listening"'))!;
    const { port } = JSON.parse(line) as { port: number };
    const probe = (path: string) => fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.status);
    expect(await probe("/livez")).toBe(200);
    for (let i = 0; i < 100 && (await probe("/readyz")) !== 200; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await probe("/readyz")).toBe(200);
    // A job that runs until aborted keeps the worker draining after the signal.
    await t.db.app.configureTask("sleep", { allowUnknown: true }).defer({ ms: 60_000 });
    for (let i = 0; i < 100 && (await t.db.app.jobManager.listJobs({ status: "doing" })).length === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    child.kill("SIGTERM");
    await child.waitForStderr('"signal_graceful"');
    expect(await probe("/readyz")).toBe(503);
    expect(await probe("/livez")).toBe(200);
    child.kill("SIGTERM"); // the second signal: abort now
    await child.done;
  });

  it("refuses a port out of range as a usage error", async () => {
    const child = start(["metrics", "--port", "70000"], t.env);
    const run = await child.done;
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--port must be a TCP port (0 to 65535), got 70000");
  });
});
