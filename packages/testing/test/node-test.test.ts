import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { cacheDir } from "./helpers.js";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

it("works under node:test, run from the package's sources", async () => {
  const tsx = createRequire(import.meta.url).resolve("tsx");
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
    execFile(
      process.execPath,
      [
        "--conditions=@proc/source",
        "--import",
        tsx,
        "--test",
        "--test-reporter=spec",
        "test/node/sign-up.ts",
      ],
      { cwd: packageDir, env: { ...process.env, PROC_TESTING_CACHE_DIR: cacheDir }, timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
  });
  expect(output).toMatch(/✔ sign-up sends the welcome email now and the tips tomorrow/);
  expect(output).toMatch(/✔ a failed expectation is an AssertionError that lists what was deferred/);
  expect(output).toMatch(/✔ a day later: the tips email and the daily report, each at its time/);
  expect(output).toMatch(/ℹ fail 0/);
  expect(code, output).toBe(0);
});
