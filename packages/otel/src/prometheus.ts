// @proc/otel/prometheus: proc's metrics in the Prometheus text format. A separate entry point
// because it needs the OpenTelemetry metrics SDK and the Prometheus exporter (optional peer
// dependencies), which the main entry point must not load: a library names only the API.
import type { IncomingMessage, ServerResponse } from "node:http";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { MeterProvider } from "@opentelemetry/sdk-metrics";

export interface PrometheusOptions {
  /** Prepended to every metric name (e.g. "myapp"). @defaultValue none */
  prefix?: string;
}

export interface PrometheusMetrics {
  /** Pass it to `otel({ meterProvider })`; the app's metrics are then what the endpoint serves. */
  readonly meterProvider: MeterProvider;
  /** A node:http handler answering with the text format (mount it at /metrics). */
  handler(request: IncomingMessage, response: ServerResponse): void;
  /** The same as a standard Request → Response handler (Hono, and any fetch-style host). */
  fetch(request?: Request): Promise<Response>;
  /** The current exposition text. */
  text(): Promise<string>;
  /** Stop collecting. */
  shutdown(): Promise<void>;
}

/** A meter provider whose metrics are served in the Prometheus text format (version 0.0.4). */
export function prometheusMetrics(options: PrometheusOptions = {}): PrometheusMetrics {
  const exporter = new PrometheusExporter({ preventServerStart: true, prefix: options.prefix });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  const serializer = new PrometheusSerializer(options.prefix);
  const text = async () => {
    const { resourceMetrics, errors } = await exporter.collect();
    for (const error of errors) console.warn("proc metrics: a collection callback failed", error);
    return serializer.serialize(resourceMetrics);
  };
  return {
    meterProvider,
    handler: (request, response) => exporter.getMetricsRequestHandler(request, response),
    fetch: async () =>
      new Response(await text(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      }),
    text,
    shutdown: () => meterProvider.shutdown(),
  };
}
