import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { scheduler } from "@proc/scheduler";
import { backends, createTestApp } from "@proc/fixtures";
import { Worker } from "@proc/worker";
import { afterEach, describe, expect, it } from "vitest";
import { retryStalledJobs } from "../src/index.js";

const fixture = fileURLToPath(new URL("./fixtures/dying-worker.ts", import.meta.url));
// The child runs TypeScript sources directly: through tsx, with the workspace's source condition.
const hasTsx = (() => {
  try {
    return existsSync(createRequire(import.meta.url).resolve("tsx"));
  } catch {
    return false;
  }
})();

// PGlite lives inside one process, so only real Postgres can be shared with a child.
describe.runIf(backends().includes("pg") && hasTsx)("a worker killed with SIGKILL (pg)", () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill("SIGKILL");
  });

  it("has its job retried by another worker within seconds", async () => {
    await using t = await createTestApp("pg");
    const app = t.app.use(scheduler()).use(retryStalledJobs({ cron: "* * * * * *", heartbeatSeconds: 2 }));
    app.task({ name: "slow" }, async () => ({ ranBy: "survivor" }));
    const id = await app.configureTask("slow").defer({});

    child = spawn(process.execPath, ["--conditions=@proc/source", "--import", "tsx", fixture], {
      env: { ...process.env, DATABASE_URL: t.db.url! },
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child!.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes(`started ${id}`)) resolve();
      });
      child!.once("exit", (code) => reject(new Error(`the child worker exited early (${code})`)));
    });
    child.kill("SIGKILL");

    const survivor = new Worker(app, { heartbeatInterval: 500, pollInterval: 200, handleSignals: false });
    const running = survivor.run();
    try {
      const outcome = await app.jobManager.waitForJob(id, { timeoutMs: 15_000 });
      expect(outcome).toMatchObject({ status: "succeeded", result: { ranBy: "survivor" } });
      expect((await app.jobManager.getJob(id))?.stalledCount).toBe(1);
    } finally {
      await survivor.stop();
      await running;
    }
  });
});
