// What guide fragments marked <!-- check-prelude: @app --> take as given: your app (with the
// scheduler plugin) and one task. Only declarations, so a block still imports what it uses.
declare const app: import("@proc/core").App & import("@proc/scheduler").SchedulerExtension;
declare const sendEmail: import("@proc/core").Task<{ to: string }, { sent: boolean }>;
