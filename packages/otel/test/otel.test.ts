// @proc/otel against a real database, with the OpenTelemetry SDK's in-memory exporters:
// the PRODUCER span's context travels with the job, each run is a CONSUMER span linked to
// (or a child of) it, retries keep the trace, the task's own spans nest under its run, and
// the metrics count exactly what a scripted run did.
import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  AggregationTemporality,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import type { App, Logger } from "@proc/core";
import { type TestApp, backends, claimRunOnDeadWorker, createTestApp } from "@proc/fixtures";
import { Worker } from "@proc/worker";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type OtelOptions, otel } from "../src/index.js";

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

/** name → [{ attributes, value }] of the last collection (sums, gauges; histogram counts). */
async function collect(
  reader: TestReader,
): Promise<Map<string, Array<{ attributes: object; value: number }>>> {
  const { resourceMetrics } = (await reader.collect()) as { resourceMetrics: ResourceMetrics };
  const out = new Map<string, Array<{ attributes: object; value: number }>>();
  for (const scope of resourceMetrics.scopeMetrics)
    for (const metric of scope.metrics)
      out.set(
        metric.descriptor.name,
        metric.dataPoints.map((p) => ({
          attributes: p.attributes,
          value: typeof p.value === "number" ? p.value : (p.value as { count: number }).count,
        })),
      );
  return out;
}

const sum = (points: Array<{ attributes: object; value: number }> | undefined, match: object = {}) =>
  (points ?? [])
    .filter((p) =>
      Object.entries(match).every(([k, v]) => (p.attributes as Record<string, unknown>)[k] === v),
    )
    .reduce((total, p) => total + p.value, 0);

/** A logger that keeps every line with its child bindings, as pino does. */
function bindingLogger(
  lines: Array<Record<string, unknown>>,
  bindings: Record<string, unknown> = {},
): Logger {
  const at = (fields: Record<string, unknown>) => {
    lines.push({ ...bindings, ...fields });
  };
  return {
    debug: at,
    info: at,
    warn: at,
    error: at,
    child: (more: Record<string, unknown>) => bindingLogger(lines, { ...bindings, ...more }),
  };
}

let contextManager: AsyncLocalStorageContextManager;
beforeAll(() => {
  contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
});
afterAll(() => {
  context.disable();
});

describe.each(backends())("@proc/otel on %s", (backend) => {
  let t: TestApp;
  let app: App;
  let spans: InMemorySpanExporter;
  let tracerProvider: BasicTracerProvider;
  let reader: TestReader;
  let meterProvider: MeterProvider;

  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
    spans = new InMemorySpanExporter();
    tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
    reader = new TestReader();
    meterProvider = new MeterProvider({ readers: [reader] });
  });

  afterEach(async () => {
    await t.dispose();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  });

  const use = (options: OtelOptions = {}) => app.use(otel({ tracerProvider, meterProvider, ...options }));
  const drain = (options: { concurrency?: number } = {}) =>
    new Worker(app, { wait: false, handleSignals: false, ...options }).run();
  const named = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);

  it("a defer inside a request's span is a PRODUCER span; each run is a CONSUMER span linked to it, retries included", async () => {
    use();
    const tracer = tracerProvider.getTracer("test");
    let attempts = 0;
    const task = app.task(
      { name: "flaky", queue: "emails", retry: { maxAttempts: 3, wait: 0 } },
      async () => {
        attempts++;
        // The task's own span nests under its run.
        tracer.startActiveSpan("fetch inside the task", (span) => span.end());
        if (attempts < 3) throw new Error(`attempt ${attempts} failed`);
        return { ok: true };
      },
    );
    const id = await tracer.startActiveSpan("POST /signup", async (request) => {
      try {
        return await task.defer({ to: "a@b.c" });
      } finally {
        request.end();
      }
    });
    // The job carries the producer span's W3C context.
    const job = await app.jobManager.getJob(id);
    const [producer] = named("send emails") as [ReadableSpan];
    expect(job?.headers?.traceparent).toBe(
      `00-${producer.spanContext().traceId}-${producer.spanContext().spanId}-01`,
    );
    const [request] = named("POST /signup") as [ReadableSpan];
    expect(producer.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(producer.kind).toBe(3); // PRODUCER
    expect(producer.attributes).toMatchObject({
      "messaging.system": "proc",
      "messaging.operation.type": "send",
      "messaging.destination.name": "emails",
      "messaging.message.id": String(id),
      "proc.task": "flaky",
    });

    await drain();
    const runs = named("process emails").sort(
      (a, b) => Number(a.attributes["proc.job.attempt"]) - Number(b.attributes["proc.job.attempt"]),
    );
    expect(runs).toHaveLength(3);
    for (const [i, run] of runs.entries()) {
      expect(run.kind).toBe(4); // CONSUMER
      expect(run.links.map((l) => l.context.spanId)).toEqual([producer.spanContext().spanId]);
      expect(run.spanContext().traceId).not.toBe(producer.spanContext().traceId);
      expect(run.attributes).toMatchObject({
        "messaging.system": "proc",
        "messaging.operation.type": "process",
        "messaging.destination.name": "emails",
        "messaging.message.id": String(id),
        "proc.task": "flaky",
        "proc.job.attempt": i + 1,
        "proc.job.run": i + 1,
        "proc.status": i < 2 ? "todo" : "succeeded",
      });
    }
    expect(runs[0]!.status).toMatchObject({ code: 2, message: "attempt 1 failed" });
    expect(runs[0]!.events.map((e) => e.name)).toEqual(["exception", "proc.job.retry"]);
    expect(runs[2]!.status.code).toBe(0);
    // The task's spans are children of their run.
    const inner = named("fetch inside the task");
    expect(inner.map((s) => s.parentSpanContext?.spanId).sort()).toEqual(
      runs.map((r) => r.spanContext().spanId).sort(),
    );
  });

  it("a stalled job's next run keeps the trace: linked to the same deferring span, marked as a recovery", async () => {
    use();
    const task = app.task({ name: "survivor", queue: "q" }, async () => {});
    const id = await tracerProvider.getTracer("test").startActiveSpan("request", async (span) => {
      try {
        return await task.defer({});
      } finally {
        span.end();
      }
    });
    const [producer] = named("send q") as [ReadableSpan];
    // Its first run's worker dies (claimed, then silent); a recovery hands it back to todo.
    const { job } = await claimRunOnDeadWorker(app, id);
    expect(await app.jobManager.retryJob(job)).toMatchObject({ status: "todo", stalledCount: 1 });
    await drain();
    const [run] = named("process q") as [ReadableSpan];
    expect(run.links.map((l) => l.context.spanId)).toEqual([producer.spanContext().spanId]);
    expect(run.attributes).toMatchObject({
      "proc.job.stalled_count": 1,
      "proc.job.run": 2,
      "proc.status": "succeeded",
    });
    expect(run.events.map((e) => e.name)).toContain("proc.job.stalled_recovery");
  });

  it('runSpanParent "child": the request, the defer, every run and its retry are one trace', async () => {
    use({ runSpanParent: "child" });
    const tracer = tracerProvider.getTracer("test");
    let attempts = 0;
    const task = app.task({ name: "once_more", retry: 2 }, async () => {
      if (++attempts === 1) throw new Error("first");
    });
    await tracer.startActiveSpan("request", async (span) => {
      await task.defer({});
      span.end();
    });
    await drain();
    const [request] = named("request") as [ReadableSpan];
    const [producer] = named("send default") as [ReadableSpan];
    const runs = named("process default");
    expect(runs).toHaveLength(2);
    for (const span of [producer, ...runs])
      expect(span.spanContext().traceId).toBe(request.spanContext().traceId);
    for (const run of runs) expect(run.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
  });

  it("a batch defer is one PRODUCER span with the batch size; without an SDK nothing is stored", async () => {
    use();
    const task = app.task({ name: "many", queue: "bulk" }, async () => {});
    const ids = await task.batchDefer([{}, {}, {}]);
    const [producer] = named("send bulk") as [ReadableSpan];
    expect(producer.attributes["messaging.batch.message_count"]).toBe(3);
    for (const id of ids)
      expect((await app.jobManager.getJob(id))?.headers?.traceparent).toContain(
        producer.spanContext().spanId,
      );

    // Another app with the plugin on the global (no-op) providers: no headers at all.
    const bare = t.app;
    const plain = await createTestApp(backend);
    try {
      plain.app.use(otel());
      // No meter provider: no listener, so workers build no event payloads for metrics.
      expect(plain.app.hasListeners("job:start")).toBe(false);
      const quiet = plain.app.task({ name: "quiet" }, async () => {});
      const id = await quiet.defer({});
      expect((await plain.app.jobManager.getJob(id))?.headers).toBeNull();
    } finally {
      await plain.dispose();
    }
    expect(bare).toBe(app);
  });

  it("log lines about a job carry its run's trace_id and span_id", async () => {
    use();
    const task = app.task({ name: "logs" }, async (_args, ctx) => {
      ctx.logger.info({ step: "inside" }, "hello");
    });
    await task.defer({});
    const lines: Array<Record<string, unknown>> = [];
    await new Worker(app, { wait: false, handleSignals: false, logger: bindingLogger(lines) }).run();
    const [run] = named("process default") as [ReadableSpan];
    const ids = { trace_id: run.spanContext().traceId, span_id: run.spanContext().spanId };
    expect(lines.find((l) => l.step === "inside")).toMatchObject(ids);
    expect(lines.find((l) => l.action === "job_success")).toMatchObject(ids);
  });

  it("metrics count exactly what a scripted run did; the gauges match the table", async () => {
    use();
    const ok = app.task({ name: "ok", queue: "a" }, async () => {});
    const flaky = app.task(
      { name: "flaky", queue: "a", retry: { maxAttempts: 2, wait: 0 } },
      async (_a, ctx) => {
        if (ctx.job.attempts === 1) throw new Error("first attempt fails");
      },
    );
    const doomed = app.task({ name: "doomed", queue: "b" }, async () => {
      throw new Error("always fails");
    });
    await ok.batchDefer([{}, {}, {}, {}, {}]); // N = 5 succeeded
    await flaky.batchDefer([{}, {}]); // M = 2 retried, then succeeded
    await doomed.batchDefer([{}, {}, {}]); // K = 3 failed
    await ok.configure({ scheduleIn: { hours: 1 } }).defer({}); // waits: todo, not ready
    await drain({ concurrency: 1 });

    const m = await collect(reader);
    expect(sum(m.get("proc.jobs.deferred"))).toBe(11);
    expect(sum(m.get("proc.jobs.deferred"), { "proc.task": "ok", "proc.queue": "a" })).toBe(6);
    expect(sum(m.get("proc.jobs.started"))).toBe(12);
    expect(sum(m.get("proc.jobs.succeeded"))).toBe(7);
    expect(sum(m.get("proc.jobs.succeeded"), { "proc.task": "flaky" })).toBe(2);
    expect(sum(m.get("proc.jobs.retried"))).toBe(2);
    expect(sum(m.get("proc.jobs.failed"))).toBe(3);
    expect(sum(m.get("proc.jobs.failed"), { "proc.task": "doomed", "proc.queue": "b" })).toBe(3);
    expect(sum(m.get("proc.jobs.aborted"))).toBe(0);
    expect(sum(m.get("proc.job.duration"))).toBe(12);
    expect(sum(m.get("proc.job.wait"))).toBe(12);
    expect(sum(m.get("proc.worker.jobs.running"))).toBe(0);
    expect(sum(m.get("proc.worker.fetch.size"))).toBeGreaterThan(0);
    expect(sum(m.get("proc.worker.outcomes.duration"))).toBeGreaterThan(0);

    // Gauges: one query per collection, against what the table holds.
    const counts = await app.jobManager.listQueues();
    expect(counts.find((q) => q.name === "a")?.todo).toBe(1);
    expect(sum(m.get("proc.queue.jobs"), { "proc.queue": "a", "proc.status": "todo" })).toBe(1);
    expect(sum(m.get("proc.queue.jobs"), { "proc.queue": "a", "proc.status": "ready" })).toBe(0);
    expect(sum(m.get("proc.queue.jobs"), { "proc.queue": "a", "proc.status": "doing" })).toBe(0);
    const ready = await ok.defer({});
    const again = await collect(reader);
    expect(sum(again.get("proc.queue.jobs"), { "proc.queue": "a", "proc.status": "ready" })).toBe(1);
    expect(sum(again.get("proc.queue.oldest_ready_age"), { "proc.queue": "a" })).toBeGreaterThanOrEqual(0);
    expect(ready).toBeGreaterThan(0);
  });
});
