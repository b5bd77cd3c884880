import type { Session } from "../session.js";

export async function worker(s: Session): Promise<number> {
  const v = s.values;
  const concurrency = v.int("concurrency", 1);
  const shutdownTimeout = v.seconds("shutdown-timeout");
  const pollInterval = v.seconds("poll-interval", { positive: true });
  const deleteJobs = v.choice("delete-jobs", ["never", "successful", "always"] as const);
  const app = await s.app("tasks");
  // Imported here so that `proc jobs list` and friends don't load the worker at all.
  const { Worker } = await import("@proc/worker");
  const w = new Worker(app, {
    queues: v.list("queues"),
    concurrency,
    name: v.string("name"),
    wait: !v.bool("one-shot"),
    shutdownTimeout: shutdownTimeout === undefined ? undefined : shutdownTimeout * 1000,
    listenNotify: !v.bool("no-listen"),
    pollInterval: pollInterval === undefined ? undefined : pollInterval * 1000,
    deleteJobs,
    handleSignals: true,
    // The CLI owns the process's stderr: -v, -q and --log-format apply to the worker's lines.
    logger: s.logger,
  });
  // run() opens the app, checks the schema, and resolves after a graceful stop (SIGINT/SIGTERM).
  await w.run();
  return 0;
}
