import { describe, expect, it } from "vitest";
import { CliError } from "./errors.js";
import { importOptional } from "./load-app.js";

describe("importOptional", () => {
  it("imports a package that is installed", async () => {
    const path = await importOptional<typeof import("node:path")>("node:path", "unused");
    expect(typeof path.join).toBe("function");
  });

  it("turns a missing optional package into a CliError naming what to install", async () => {
    const message = "this needs @proc/not-installed: npm install @proc/not-installed";
    const error = await importOptional("@proc/not-installed", message).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CliError);
    expect((error as Error).message).toBe(message);
  });
});
