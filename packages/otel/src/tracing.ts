import {
  type Attributes,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  context,
  isSpanContextValid,
  trace,
} from "@opentelemetry/api";
import type { App, Job, JobContext, NewJob } from "@proc/core";
import {
  ERROR_TYPE,
  MESSAGING_BATCH_MESSAGE_COUNT,
  MESSAGING_CLIENT_ID,
  MESSAGING_DESTINATION_NAME,
  MESSAGING_MESSAGE_ID,
  MESSAGING_OPERATION_NAME,
  MESSAGING_OPERATION_TYPE,
  MESSAGING_SYSTEM,
  PROC_JOB_ATTEMPT,
  PROC_JOB_LOCK,
  PROC_JOB_PRIORITY,
  PROC_JOB_RUN,
  PROC_JOB_STALLED_COUNT,
  PROC_STATUS,
  PROC_TASK,
  PROC_WORKER,
  SYSTEM,
} from "./attributes.js";
import { contextHeaders, headersContext } from "./w3c.js";

/** How a run's span relates to the span that deferred its job. */
export type RunSpanParent = "link" | "child";

/**
 * Spans for proc, through the OpenTelemetry API only:
 * - every defer is a PRODUCER span `send <queue>`, and its context (W3C traceparent and
 *   tracestate) is stored in each job's headers by the insert itself;
 * - every run of a job is a CONSUMER span `process <queue>`, linked to the deferring span
 *   (or its child), active while the task runs, so the task's own spans (fetch, SQL) nest
 *   under it; it ends with the run's outcome, retries and aborts as span events.
 */
export function installTracing(app: App, tracer: Tracer, parent: RunSpanParent): void {
  app.interceptDefer((jobs, next) => deferSpan(tracer, jobs, next));

  // The run's span, from the middleware that starts it to the event that ends the run.
  // Keyed by the job object the worker hands to both (a WeakMap: a run that never ends,
  // e.g. in a process killed mid-run, leaves nothing behind).
  const runs = new WeakMap<Job, Span>();

  app.addMiddleware((ctx, next) => {
    const span = startRunSpan(tracer, ctx, parent);
    if (isNoop(span)) {
      // No SDK (the API's no-op tracer): nothing to record or to make active. Keeping this
      // path free of contexts, listeners and map entries is what "no cost without an SDK" means.
      span.end();
      return next();
    }
    runs.set(ctx.job as Job, span);
    // Why the run's signal aborted (abort request, timeout, shutdown, recovered elsewhere).
    ctx.signal.addEventListener(
      "abort",
      () => span.addEvent("proc.job.abort", { "proc.abort.reason": abortReason(ctx.signal.reason) }),
      { once: true },
    );
    return context.with(trace.setSpan(context.active(), span), next);
  });

  // Log lines about a job carry the ids of its run's span (or, before the run started, of the
  // span that deferred it), so that logs and traces join on trace_id.
  app.addLogBindings((job) => {
    const span = runs.get(job);
    const sc = span ? span.spanContext() : headersContext(job.headers);
    return sc ? { trace_id: sc.traceId, span_id: sc.spanId } : null;
  });

  const end = (job: Job, finish: (span: Span) => void) => {
    const span = runs.get(job);
    if (!span) return;
    runs.delete(job);
    finish(span);
    span.end();
  };
  app.on("job:success", ({ job }) => end(job, (span) => span.setAttribute(PROC_STATUS, "succeeded")));
  app.on("job:retry", ({ job, error, retryAt }) =>
    end(job, (span) => {
      failed(span, error);
      span.setAttribute(PROC_STATUS, "todo");
      span.addEvent("proc.job.retry", { "proc.retry_at": retryAt.toISOString() });
    }),
  );
  app.on("job:error", ({ job, error, status }) =>
    end(job, (span) => {
      failed(span, error);
      span.setAttribute(PROC_STATUS, status);
    }),
  );
  app.on("job:abort", ({ job, reason }) => {
    if (reason === "recovered") runs.get(job)?.addEvent("proc.job.recovered");
  });
}

async function deferSpan(
  tracer: Tracer,
  jobs: NewJob[],
  next: (jobs: NewJob[]) => Promise<number[]>,
): Promise<number[]> {
  const first = jobs[0];
  if (!first) return next(jobs);
  const queue = jobs.every((j) => j.queue === first.queue) ? first.queue : null;
  const attributes: Attributes = {
    [MESSAGING_SYSTEM]: SYSTEM,
    [MESSAGING_OPERATION_TYPE]: "send",
    [MESSAGING_OPERATION_NAME]: "send",
    [PROC_TASK]: jobs.every((j) => j.task === first.task) ? first.task : undefined,
  };
  if (queue !== null) attributes[MESSAGING_DESTINATION_NAME] = queue;
  if (jobs.length > 1) attributes[MESSAGING_BATCH_MESSAGE_COUNT] = jobs.length;
  const span = tracer.startSpan(queue === null ? "send" : `send ${queue}`, {
    kind: SpanKind.PRODUCER,
    attributes,
  });
  if (isNoop(span)) {
    span.end();
    return next(jobs);
  }
  return context.with(trace.setSpan(context.active(), span), async () => {
    try {
      // The producer span's own context: each run links to (or continues) this span.
      // Nothing is added when no SDK is registered (the span context is then invalid).
      const headers = contextHeaders(span.spanContext());
      const carried =
        Object.keys(headers).length === 0
          ? jobs
          : jobs.map((job) => ({ ...job, headers: { ...job.headers, ...headers } }));
      const ids = await next(carried);
      if (ids.length === 1) span.setAttribute(MESSAGING_MESSAGE_ID, String(ids[0]));
      return ids;
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** A span of the API's no-op tracer (no SDK registered): it records nothing and carries no context. */
function isNoop(span: Span): boolean {
  return !span.isRecording() && !isSpanContextValid(span.spanContext());
}

function startRunSpan(tracer: Tracer, ctx: JobContext<unknown>, parent: RunSpanParent): Span {
  const { job } = ctx;
  const deferred = headersContext(job.headers);
  const links: Link[] = deferred && parent === "link" ? [{ context: deferred }] : [];
  // A run is a trace of its own (linked to the deferring span), or a child of that span;
  // never a child of whatever context the worker's loop happens to be in.
  const parentContext =
    deferred && parent === "child" ? trace.setSpanContext(ROOT_CONTEXT, deferred) : ROOT_CONTEXT;
  const attributes: Attributes = {
    [MESSAGING_SYSTEM]: SYSTEM,
    [MESSAGING_OPERATION_TYPE]: "process",
    [MESSAGING_OPERATION_NAME]: "process",
    [MESSAGING_DESTINATION_NAME]: job.queue,
    [MESSAGING_MESSAGE_ID]: String(job.id),
    [MESSAGING_CLIENT_ID]: ctx.workerName,
    [PROC_TASK]: job.task,
    [PROC_JOB_ATTEMPT]: job.attempts,
    [PROC_JOB_RUN]: job.run,
    [PROC_JOB_PRIORITY]: job.priority,
    [PROC_WORKER]: ctx.workerName,
  };
  if (job.lock !== null) attributes[PROC_JOB_LOCK] = job.lock;
  if (job.stalledCount > 0) attributes[PROC_JOB_STALLED_COUNT] = job.stalledCount;
  const span = tracer.startSpan(
    `process ${job.queue}`,
    { kind: SpanKind.CONSUMER, attributes, links },
    parentContext,
  );
  // A run after a stalled recovery: its previous run's worker died.
  if (job.stalledCount > 0)
    span.addEvent("proc.job.stalled_recovery", { [PROC_JOB_STALLED_COUNT]: job.stalledCount });
  return span;
}

function failed(span: Span, error: unknown): void {
  if (error instanceof Error) {
    span.recordException(error);
    span.setAttribute(ERROR_TYPE, error.name);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else {
    span.setAttribute(ERROR_TYPE, "_OTHER");
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
  }
}

function abortReason(reason: unknown): string {
  const value = (reason as { reason?: unknown } | undefined)?.reason;
  return typeof value === "string" ? value : reason instanceof Error ? reason.name : "unknown";
}
