import { type Attributes, type Meter, createNoopMeter } from "@opentelemetry/api";
import type { App, Job } from "@proc/core";
import { PROC_QUEUE, PROC_STATUS, PROC_TASK, PROC_WORKER } from "./attributes.js";

// Seconds for durations (OpenTelemetry's convention); buckets from 1 ms to 5 min, so that
// both no-op jobs and slow exports land in a bucket of their own.
const SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];
const BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000];

/** The class of the API's no-op meter (the API exports a factory, not the class). */
const NOOP_METER = createNoopMeter().constructor;

const of = (job: Job): Attributes => ({ [PROC_QUEUE]: job.queue, [PROC_TASK]: job.task });

/**
 * proc's metrics, through the OpenTelemetry metrics API: counters and histograms fed by the
 * app's events (every worker of the process emits on its app), and gauges of the queues read
 * by one query per collection, shared by every gauge.
 */
export function installMetrics(app: App, meter: Meter, options: { queueGauges: boolean }): void {
  // No meter provider registered (the API's no-op meter; the metrics API has no proxy, so one
  // registered later is never used by this meter either): record nothing, and add no listener
  // that would make every worker build event payloads for nothing.
  if (meter.constructor === NOOP_METER) return;
  const counter = (name: string, description: string) =>
    meter.createCounter(name, { description, unit: "{job}" });
  const deferred = counter("proc.jobs.deferred", "Jobs deferred by this process");
  const started = counter("proc.jobs.started", "Runs started");
  const succeeded = counter("proc.jobs.succeeded", "Runs that succeeded");
  const failed = counter("proc.jobs.failed", "Runs that failed for good (not retried)");
  const retried = counter("proc.jobs.retried", "Runs that failed and were retried");
  const aborted = counter("proc.jobs.aborted", "Runs that ended aborted");
  const recovered = counter("proc.jobs.recovered", "Stalled jobs handed back to todo");
  const duration = meter.createHistogram("proc.job.duration", {
    description: "How long a run took, by outcome",
    unit: "s",
    advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
  });
  const wait = meter.createHistogram("proc.job.wait", {
    description: "How long a job waited from ready (deferred, scheduled or retry time) to its start",
    unit: "s",
    advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
  });
  const running = meter.createUpDownCounter("proc.worker.jobs.running", {
    description: "Worker slots busy: runs in progress",
    unit: "{job}",
  });
  const fetchSize = meter.createHistogram("proc.worker.fetch.size", {
    description: "Jobs claimed by one fetch round trip",
    unit: "{job}",
    advice: { explicitBucketBoundaries: BATCH_BUCKETS },
  });
  const outcomeWrite = meter.createHistogram("proc.worker.outcomes.duration", {
    description: "How long writing one batch of outcomes took",
    unit: "s",
    advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
  });
  const reconnects = meter.createCounter("proc.worker.reconnects", {
    description: "Times a worker got through to the database again after losing it",
    unit: "{reconnect}",
  });

  app.on("job:deferred", ({ ids, task, queue }) =>
    deferred.add(ids.length, { [PROC_QUEUE]: queue, [PROC_TASK]: task }),
  );
  // Runs started here and not ended yet: a prefetched job aborted before it started ends
  // (job:error) without having started, and must not count as a slot freed.
  const inFlight = new WeakSet<Job>();
  app.on("job:start", ({ job, worker }) => {
    inFlight.add(job);
    started.add(1, of(job));
    running.add(1, { [PROC_WORKER]: worker.name });
    if (job.startedAt) {
      // Both times are the database's, so no clock skew between hosts enters the wait.
      const readyAt = Math.max(job.createdAt.getTime(), job.scheduledAt?.getTime() ?? 0);
      wait.record(Math.max(0, job.startedAt.getTime() - readyAt) / 1000, of(job));
    }
  });
  const ended = (job: Job, worker: { name: string }, status: string, durationMs: number) => {
    if (!inFlight.delete(job)) return;
    running.add(-1, { [PROC_WORKER]: worker.name });
    duration.record(durationMs / 1000, { ...of(job), [PROC_STATUS]: status });
  };
  app.on("job:success", ({ job, worker, durationMs }) => {
    succeeded.add(1, of(job));
    ended(job, worker, "succeeded", durationMs);
  });
  app.on("job:retry", ({ job, worker, durationMs }) => {
    retried.add(1, of(job));
    ended(job, worker, "todo", durationMs);
  });
  app.on("job:error", ({ job, worker, durationMs, status }) => {
    (status === "aborted" ? aborted : failed).add(1, of(job));
    ended(job, worker, status, durationMs);
  });
  app.on("job:recovered", ({ job }) => recovered.add(1, of(job)));
  app.on("worker:fetch", ({ count }) => fetchSize.record(count));
  app.on("worker:outcomes", ({ durationMs }) => outcomeWrite.record(durationMs / 1000));
  app.on("worker:reconnect", ({ worker }) => reconnects.add(1, { [PROC_WORKER]: worker.name }));

  if (!options.queueGauges) return;
  const depth = meter.createObservableGauge("proc.queue.jobs", {
    description: "Jobs in a queue by status: todo (all waiting), ready (waiting and due now), doing",
    unit: "{job}",
  });
  const oldest = meter.createObservableGauge("proc.queue.oldest_ready_age", {
    description: "Age of the oldest job of a queue that is ready to start and has not",
    unit: "s",
  });
  // One query per collection for every gauge (a batch callback). Skipped while the app is
  // closed: a collection must not open connections of its own.
  meter.addBatchObservableCallback(
    async (result) => {
      if (!app.isOpen) return;
      for (const q of await app.jobManager.queueGauges()) {
        const attributes = { [PROC_QUEUE]: q.queue };
        result.observe(depth, q.todo, { ...attributes, [PROC_STATUS]: "todo" });
        result.observe(depth, q.ready, { ...attributes, [PROC_STATUS]: "ready" });
        result.observe(depth, q.doing, { ...attributes, [PROC_STATUS]: "doing" });
        result.observe(oldest, q.oldestReadySeconds, attributes);
      }
    },
    [depth, oldest],
  );
}
