import "./tracing.js";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { SpanKind, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { Worker } from "@proc/worker";
import { app, sendWelcome } from "./app.js";
import { spans } from "./tracing.js";

await app.open();
await app.migrate();

// An HTTP endpoint that defers a job. (An HTTP instrumentation would make this span; here it
// is made by hand so that the example needs nothing but the SDK.)
const tracer = trace.getTracer("http");
const server = createServer((request, response) =>
  tracer.startActiveSpan(`${request.method} ${request.url}`, { kind: SpanKind.SERVER }, async (span) => {
    const id = await sendWelcome.defer({ to: "ada@example.com" });
    response.end(JSON.stringify({ id }));
    span.end();
  }),
);
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as AddressInfo;
const { id } = (await (await fetch(`http://127.0.0.1:${port}/signup`, { method: "POST" })).json()) as {
  id: number;
};
server.close();

const worker = new Worker(app, { handleSignals: false, pollInterval: 100 });
const running = worker.run();
const outcome = await app.jobManager.waitForJob(id, { timeoutMs: 10_000 });
await worker.stop();
await running;
await app.close();

// The trace, as a tree.
const finished = spans.getFinishedSpans();
const children = new Map<string | undefined, ReadableSpan[]>();
for (const span of finished) {
  const parent = span.parentSpanContext?.spanId;
  children.set(parent, [...(children.get(parent) ?? []), span]);
}
const kinds = ["INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];
const print = (span: ReadableSpan, depth: number) => {
  const a = span.attributes;
  const detail = [
    a["proc.job.attempt"] ? `attempt ${a["proc.job.attempt"]}` : "",
    a["proc.status"] ? `→ ${a["proc.status"]}` : "",
    span.status.message ? `(${span.status.message})` : "",
    span.events.length ? `events: ${span.events.map((e) => e.name).join(", ")}` : "",
  ].filter(Boolean);
  console.log(`${"  ".repeat(depth)}${span.name} [${kinds[span.kind]}] ${detail.join(" ")}`);
  const kids = (children.get(span.spanContext().spanId) ?? []).sort(
    (x, y) => x.startTime[1] - y.startTime[1] || x.startTime[0] - y.startTime[0],
  );
  for (const child of kids) print(child, depth + 1);
};
const roots = children.get(undefined) ?? [];
console.log(`trace ${roots[0]?.spanContext().traceId}:`);
for (const root of roots) print(root, 1);

const traceIds = new Set(finished.map((s) => s.spanContext().traceId));
const runs = finished.filter((s) => s.name === "process emails");
if (outcome.status !== "succeeded" || traceIds.size !== 1 || runs.length !== 2) {
  console.error(
    `expected one trace with 2 runs and a success, got ${traceIds.size} traces, ${runs.length} runs, ${outcome.status}`,
  );
  process.exit(1);
}
console.log(
  `\njob ${id} ${outcome.status} after a retry; the request, the defer and both runs are one trace.`,
);
