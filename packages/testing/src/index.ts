// The public surface of @proc/testing, chosen by hand.
export { createTestApp } from "./test-app.js";
export type { TestApp, TestAppOptions } from "./test-app.js";
export type { TestClock } from "./clock.js";
export { RunUntilIdleError, runUntilIdle } from "./run-until-idle.js";
export type {
  JobRun,
  RunUntilIdleErrorReason,
  RunUntilIdleOptions,
  RunUntilIdleResult,
} from "./run-until-idle.js";
export { deferredJobs, expectDeferred, expectNotDeferred } from "./assertions.js";
export type { DeferredFilter, ExpectDeferredOptions, TaskRef } from "./assertions.js";
export type { ArgsPattern } from "./match.js";
