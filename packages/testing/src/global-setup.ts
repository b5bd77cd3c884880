import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { pgUrl } from "./backends.js";

import "./provided.js";

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Once per test run: migrate one template of each backend. Test files clone it
 * (CREATE DATABASE ... TEMPLATE for Postgres, a data-dir dump for PGlite), which is
 * much cheaper than migrating per file (a fresh PGlite instance takes ~6 s).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const tsx = createRequire(import.meta.url).resolve("tsx");
  const out = execFileSync(
    process.execPath,
    ["--conditions=@proc/source", "--import", tsx, join(here, "make-templates.ts")],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: process.env },
  );
  const made = JSON.parse(out.trim().split("\n").pop()!) as {
    pglitePath: string;
    pglDir: string;
    pgTemplate: string | null;
  };
  project.provide("procPgliteTemplate", made.pglitePath);
  project.provide("procPgTemplate", made.pgTemplate);

  return async () => {
    rmSync(made.pglDir, { recursive: true, force: true });
    const url = pgUrl();
    if (url && made.pgTemplate) {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${made.pgTemplate}" WITH (FORCE)`);
      await admin.end();
    }
  };
}
