// The public surface of @proc/scheduler, chosen by hand.
export { cronProblems, parseCron } from "./cron.js";
export type { CronSchedule, ParseCronOptions } from "./cron.js";
export { periodic, scheduler } from "./scheduler.js";
export type {
  PeriodicArgs,
  PeriodicHandle,
  PeriodicOptions,
  SchedulerExtension,
  SchedulerOptions,
} from "./scheduler.js";
export { deleteExpiredJobs } from "./retention.js";
export type { RetentionAge, RetentionOptions, RetentionRules } from "./retention.js";
