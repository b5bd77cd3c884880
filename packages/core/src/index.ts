// The public surface of @proc/core, chosen by hand: nothing here is an accident.
export { App } from "./app.js";
export type {
  AppEvents,
  AppOptions,
  ConfigureTaskOptions,
  DeferInterceptor,
  LogBindings,
  Plugin,
  WorkerService,
  WorkerServiceContext,
} from "./app.js";
export { Blueprint } from "./blueprint.js";
export type {
  Connector,
  DriverConnection,
  Listener,
  ListenOptions,
  Notification,
  Queryable,
  ReservedConnections,
} from "./connector.js";
export {
  AlreadyEnqueued,
  AppNotOpen,
  ConnectionError,
  ConnectorError,
  DuplicateTask,
  InvalidArgs,
  InvalidOptions,
  JobNotFound,
  ProcError,
  SchemaMissing,
  SchemaOutdated,
  SchemaTooNew,
  TaskNotFound,
  UniqueViolation,
  UnsupportedRuntime,
  WaitTimeout,
  isProcError,
  isTransientError,
  redact,
  translateDriverError,
} from "./errors.js";
export type { ProcErrorCode } from "./errors.js";
export { TypedEmitter } from "./events.js";
export { FINAL_STATUSES, JOB_STATUSES } from "./job.js";
export type { Job, JobError, JobEvent, JobHeaders, JobStatus, RateLimit } from "./job.js";
export { JobManager } from "./job-manager.js";
export type {
  CancelJobOptions,
  Claim,
  Completion,
  Counts,
  FailOptions,
  Heartbeat,
  JobOutcome,
  Limits,
  ListJobsFilter,
  NewJob,
  NewJobFlow,
  QueueGauges,
  QueueLimits,
  RetryJobOptions,
  RunRef,
  StalledJobsOptions,
  WorkerInfo,
} from "./job-manager.js";
export type {
  LockHolder,
  LocksCursor,
  PeriodicTick,
  QueueSummary,
  RunningJob,
  SearchJobsFilter,
  ThroughputMinute,
} from "./job-manager.js";
export type { JsonObject, JsonPrimitive, JsonValue } from "./json.js";
export { consoleLogger, silentLogger } from "./logger.js";
export type { ConsoleLoggerOptions, Logger, LogLevel } from "./logger.js";
export type { SchemaStatus } from "./migrate.js";
export { computeRetry, normalizeRetry, retryDelay, validateRetry } from "./retry.js";
export type { RetryDecision, RetryFunction, RetryOption, RetryStrategy } from "./retry.js";
export type { InferInput, InferOutput, StandardSchemaV1 } from "./standard-schema.js";
export { LATEST_MIGRATION } from "./sql.js";
export { Deferrer, Task, durationMs } from "./task.js";
export { MAX_DURATION_MS, checkDate, checkDuration, jsonProblem, storableText } from "./validate.js";
export type { DurationRules } from "./validate.js";
export type {
  AdditionalContext,
  DeferCallOptions,
  Duration,
  JobContext,
  JobOptions,
  TaskHandler,
  TaskMiddleware,
  OnConflict,
  RateLimitOption,
  TaskOptions,
} from "./task.js";
export type { AbortReason, EventWorker, WorkerEventMap } from "./worker-events.js";
