// The public surface of @proc/otel, chosen by hand.
import { type MeterProvider, type TracerProvider, metrics, trace } from "@opentelemetry/api";
import { InvalidOptions, type Plugin } from "@proc/core";
import { installMetrics } from "./metrics.js";
import { type RunSpanParent, installTracing } from "./tracing.js";

export type { RunSpanParent } from "./tracing.js";
export { contextHeaders, headersContext } from "./w3c.js";

const NAME = "@proc/otel";
const VERSION = "0.1.0";

export interface OtelOptions {
  /** Where spans go. @defaultValue the global provider (`trace.getTracerProvider()`): a no-op until an SDK registers one */
  tracerProvider?: TracerProvider;
  /** Where metrics go. @defaultValue the global provider (`metrics.getMeterProvider()`) */
  meterProvider?: MeterProvider;
  /**
   * How each run's CONSUMER span relates to the PRODUCER span that deferred the job:
   * "link" (a trace per run, linked to the deferring span: the messaging conventions' default
   * for work done later) or "child" (the run continues the deferring trace, so one trace shows
   * the request, the defer, every run and every retry). @defaultValue "link"
   */
  runSpanParent?: RunSpanParent;
  /** Spans for defers and runs. @defaultValue true */
  traces?: boolean;
  /** Counters, histograms and gauges. @defaultValue true */
  metrics?: boolean;
  /**
   * The queue gauges (jobs by status, oldest ready job's age), read by one query per metrics
   * collection. Turn off in all but one process when many share a database. @defaultValue true
   */
  queueGauges?: boolean;
}

/**
 * OpenTelemetry for a proc app: `app.use(otel())`. Uses only `@opentelemetry/api`; what it
 * records goes wherever the app's OpenTelemetry SDK sends it, and nowhere (at almost no cost)
 * when none is installed.
 */
export function otel(options: OtelOptions = {}): Plugin {
  const parent = options.runSpanParent ?? "link";
  if (parent !== "link" && parent !== "child")
    throw new InvalidOptions("otel", [`runSpanParent: "link" or "child", got ${JSON.stringify(parent)}`]);
  return {
    name: "otel",
    setup(app) {
      if (options.traces !== false)
        installTracing(
          app,
          (options.tracerProvider ?? trace.getTracerProvider()).getTracer(NAME, VERSION),
          parent,
        );
      if (options.metrics !== false)
        installMetrics(app, (options.meterProvider ?? metrics.getMeterProvider()).getMeter(NAME, VERSION), {
          queueGauges: options.queueGauges ?? true,
        });
      return {};
    },
  };
}
