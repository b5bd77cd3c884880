import type { Session } from "../session.js";
import { metricsEndpoint, portOf } from "./metrics.js";

export async function worker(s: Session): Promise<number> {
  const v = s.values;
  const concurrency = v.int("concurrency", 1);
  const shutdownTimeout = v.seconds("shutdown-timeout");
  const pollInterval = v.seconds("poll-interval", { positive: true });
  const deleteJobs = v.choice("delete-jobs", ["never", "successful", "always"] as const);
  const metricsPort = portOf(s, "metrics-port");
  const probesPort = portOf(s, "probes-port");
  // Before the app module loads: it may use otel() on the global meter provider.
  const endpoint =
    metricsPort === undefined
      ? null
      : await metricsEndpoint(s, metricsPort, v.string("metrics-host") ?? "127.0.0.1");
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
    probes:
      probesPort === undefined ? null : { port: probesPort, host: v.string("probes-host") ?? "127.0.0.1" },
    handleSignals: true,
    // The CLI owns the process's stderr: -v, -q and --log-format apply to the worker's lines.
    logger: s.logger,
  });
  if (endpoint) await endpoint.listen(app);
  try {
    // run() opens the app, checks the schema, and resolves after a graceful stop (SIGINT/SIGTERM).
    await w.run();
  } finally {
    await endpoint?.close();
  }
  return 0;
}
