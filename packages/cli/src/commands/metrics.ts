import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { App } from "@proc/core";
import { UsageError } from "../errors.js";
import { importOptional } from "../load-app.js";
import type { Session } from "../session.js";

const INSTALL =
  "npm install @proc/otel @opentelemetry/api @opentelemetry/sdk-metrics @opentelemetry/exporter-prometheus";

/** A Prometheus endpoint for the app: what `proc metrics` serves, and `proc worker --metrics-port`. */
export interface MetricsEndpoint {
  /** Opens the app (its gauges read the database) and starts serving at /metrics. */
  listen(app: App): Promise<string>;
  close(): Promise<void>;
}

/**
 * Set up the metrics before the app module loads: the global meter provider becomes the
 * Prometheus one, so an app that already uses `otel()` (on the global provider) reports there;
 * an app without it gets `otel()` added. @proc/otel and the metrics SDK are optional peers.
 */
export async function metricsEndpoint(s: Session, port: number, host: string): Promise<MetricsEndpoint> {
  const needs = `Prometheus metrics need @proc/otel and the OpenTelemetry metrics SDK: ${INSTALL}`;
  const api = await importOptional<typeof import("@opentelemetry/api")>("@opentelemetry/api", needs);
  const { otel } = await importOptional<typeof import("@proc/otel")>("@proc/otel", needs);
  const { prometheusMetrics } = await importOptional<typeof import("@proc/otel/prometheus")>(
    "@proc/otel/prometheus",
    needs,
  );
  const metrics = prometheusMetrics();
  api.metrics.setGlobalMeterProvider(metrics.meterProvider);
  const server = createServer((request, response) => {
    if (
      request.url?.split("?")[0] !== "/metrics" ||
      (request.method !== "GET" && request.method !== "HEAD")
    ) {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at /metrics\n");
      return;
    }
    metrics.handler(request, response);
  });
  return {
    async listen(app) {
      if (!app.plugins.includes("otel")) app.use(otel({ traces: false }));
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, resolve);
      });
      const address = server.address() as AddressInfo;
      const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}/metrics`;
      s.logger.info({ action: "metrics_listening", url }, `serving metrics at ${url}`);
      return url;
    },
    async close() {
      await new Promise((resolve) => server.close(resolve));
      await metrics.shutdown();
    },
  };
}

/** The TCP port in option `name` (0: any free port), if given. */
export function portOf(s: Session, name: string): number | undefined {
  const port = s.values.int(name, 0);
  if (port !== undefined && port > 65535)
    throw new UsageError(`--${name} must be a TCP port (0 to 65535), got ${port}`, s.command);
  return port;
}

/** `proc metrics`: the queue gauges (and whatever the app counts) until SIGINT/SIGTERM. */
export async function metricsCommand(s: Session): Promise<number> {
  const port = portOf(s, "port") ?? 9464;
  const host = s.values.string("host") ?? "127.0.0.1";
  const endpoint = await metricsEndpoint(s, port, host);
  const app = await s.open("database");
  await endpoint.listen(app);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await endpoint.close();
  return 0;
}
