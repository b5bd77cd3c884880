export { Worker } from "./worker.js";
export type { WorkerEvents } from "./worker.js";
export { WORKER_DEFAULTS } from "./options.js";
export type { DeleteJobs, TaskMiddleware, WorkerOptions } from "./options.js";
export type { HealthCheck, HealthReport, ProbesOptions, WorkerHealth } from "./probes.js";
export {
  JobAbortedError,
  JobRecoveredError,
  JobTimeoutError,
  WorkerShutdownError,
  serializeError,
} from "./errors.js";
export type { AbortReason } from "./errors.js";
