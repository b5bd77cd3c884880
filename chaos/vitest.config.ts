import { mergeConfig } from "vitest/config";
import { procVitestConfig } from "../packages/fixtures/vitest.preset.js";

// The chaos suites spawn dozens of processes and restart things: one file at a time,
// so that they neither starve each other on a small machine nor share a failure.
export default mergeConfig(procVitestConfig({ include: ["test/**/*.test.ts"] }), {
  test: { fileParallelism: false, testTimeout: 180_000 },
});
