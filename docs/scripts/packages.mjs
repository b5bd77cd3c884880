// Paths and the list of published packages, shared by the docs scripts and the VitePress config.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** docs/ */
export const DOCS = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The repository root. */
export const REPO = join(DOCS, "..");

/** Every published package (packages/<dir>, npm name @proc/<dir>), in the order the docs list them. */
export const PACKAGES = [
  "core",
  "pg-connector",
  "pglite-connector",
  "worker",
  "scheduler",
  "contrib-stalled",
  "cli",
  "testing",
  "otel",
  "dashboard",
];

/** The published packages whose public entry point exists (a package being written may lack it). */
export function publishedPackages() {
  return PACKAGES.filter((p) => existsSync(join(REPO, "packages", p, "src/index.ts")));
}
