import { UnsupportedRuntime } from "./errors.js";

// What proc uses that Node.js 20.4 added (engines.node). npm only warns on an engines mismatch
// and installs anyway, so without this check an older Node fails mid-job, e.g. with
// "value.isWellFormed is not a function" when a task's args are first validated.
const FEATURES: ReadonlyArray<readonly [name: string, present: () => boolean]> = [
  ["String.prototype.isWellFormed", () => typeof String.prototype.isWellFormed === "function"],
  ["String.prototype.toWellFormed", () => typeof String.prototype.toWellFormed === "function"],
  ["Symbol.asyncDispose", () => typeof Symbol.asyncDispose === "symbol"],
];

/** Throws UnsupportedRuntime, naming every missing feature, unless the runtime has them all. */
export function assertSupportedRuntime(): void {
  const missing = FEATURES.filter(([, present]) => !present()).map(([name]) => name);
  if (missing.length)
    throw new UnsupportedRuntime(missing, globalThis.process?.version ?? "an unknown runtime");
}
