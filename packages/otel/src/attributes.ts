// Attribute names. The messaging.* ones are OpenTelemetry's messaging semantic conventions
// (https://opentelemetry.io/docs/specs/semconv/messaging/); they are written out rather than
// imported because @opentelemetry/semantic-conventions publishes them only from its incubating
// entry point, which may change in any release. proc.* are proc's own.
export const MESSAGING_SYSTEM = "messaging.system";
export const MESSAGING_OPERATION_TYPE = "messaging.operation.type";
export const MESSAGING_OPERATION_NAME = "messaging.operation.name";
export const MESSAGING_DESTINATION_NAME = "messaging.destination.name";
export const MESSAGING_MESSAGE_ID = "messaging.message.id";
export const MESSAGING_BATCH_MESSAGE_COUNT = "messaging.batch.message_count";
export const MESSAGING_CLIENT_ID = "messaging.client.id";
export const ERROR_TYPE = "error.type";

export const PROC_TASK = "proc.task";
export const PROC_QUEUE = "proc.queue";
export const PROC_STATUS = "proc.status";
export const PROC_JOB_ATTEMPT = "proc.job.attempt";
export const PROC_JOB_RUN = "proc.job.run";
export const PROC_JOB_PRIORITY = "proc.job.priority";
export const PROC_JOB_LOCK = "proc.job.lock";
export const PROC_JOB_STALLED_COUNT = "proc.job.stalled_count";
export const PROC_WORKER = "proc.worker";

/** The value of messaging.system for proc's spans. */
export const SYSTEM = "proc";
