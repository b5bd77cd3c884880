// OpenTelemetry SDK setup, as an app would do it first thing (before the app module loads).
// Spans are kept in memory so that main.ts can print the trace as a tree; a real app would
// export them (OTLP to a collector, Jaeger, Honeycomb...) with a BatchSpanProcessor.
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

export const spans = new InMemorySpanExporter();
// The context manager carries the active span across awaits: a task's own spans (fetch, SQL)
// then nest under its run.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
