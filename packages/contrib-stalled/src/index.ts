// The public surface of @proc/contrib-stalled, chosen by hand.
export { RETRY_STALLED_JOBS_TASK, retryStalledJobs } from "./retry-stalled-jobs.js";
export type { RetryStalledJobsOptions, RetryStalledJobsResult } from "./retry-stalled-jobs.js";
