// The Prometheus endpoint: the app's metrics in the text format, served by node:http and as a
// fetch handler, and accepted by Prometheus's own parser (`promtool check metrics`).
import { execFileSync, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { App } from "@proc/core";
import { type TestApp, backends, createTestApp } from "@proc/fixtures";
import { Worker } from "@proc/worker";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { otel } from "../src/index.js";
import { type PrometheusMetrics, prometheusMetrics } from "../src/prometheus.js";

// .ci/run puts promtool (from Debian's prometheus package) on PATH and sets
// PROC_REQUIRE_PROMTOOL=1, so that CI fails rather than skips without it.
const promtool = spawnSync("promtool", ["--version"]).status === 0;
const required = process.env.PROC_REQUIRE_PROMTOOL === "1";

describe.each(backends())("Prometheus metrics on %s", (backend) => {
  let t: TestApp;
  let app: App;
  let metrics: PrometheusMetrics;

  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
    metrics = prometheusMetrics();
    app.use(otel({ meterProvider: metrics.meterProvider, traces: false }));
  });

  afterEach(async () => {
    await metrics.shutdown();
    await t.dispose();
  });

  async function scriptedRun(): Promise<void> {
    const ok = app.task({ name: "ok", queue: "mail" }, async () => {});
    const bad = app.task({ name: "bad", queue: "mail" }, async () => {
      throw new Error("no");
    });
    await ok.batchDefer([{}, {}]);
    await bad.defer({});
    await ok.configure({ scheduleIn: { hours: 1 } }).defer({});
    await new Worker(app, { wait: false, handleSignals: false }).run();
  }

  it("serves counters, histograms and gauges in the text format, over node:http and fetch", async () => {
    await scriptedRun();
    const server = createServer(metrics.handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toContain("text/plain");
      const body = await response.text();
      expect(body).toMatch(/^proc_jobs_succeeded_total\{proc_queue="mail",proc_task="ok"[^}]*\} 2$/m);
      expect(body).toMatch(/^proc_jobs_failed_total\{proc_queue="mail",proc_task="bad"[^}]*\} 1$/m);
      expect(body).toMatch(/^proc_job_duration_count\{[^}]*proc_task="ok"[^}]*\} 2$/m);
      expect(body).toMatch(/^proc_queue_jobs\{proc_queue="mail",proc_status="todo"[^}]*\} 1$/m);
      expect(body).toMatch(/^proc_queue_jobs\{proc_queue="mail",proc_status="ready"[^}]*\} 0$/m);
      const viaFetch = await (await metrics.fetch()).text();
      expect(viaFetch).toMatch(/^proc_jobs_deferred_total\{proc_queue="mail",proc_task="ok"[^}]*\} 3$/m);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it.skipIf(!promtool && !required)("the output passes `promtool check metrics`", async () => {
    if (!promtool)
      throw new Error("promtool is not on PATH: .ci/run extracts it from Debian's prometheus package");
    await scriptedRun();
    const text = await metrics.text();
    // promtool reads the exposition on stdin; it exits non-zero on a parse error or a lint
    // problem (a counter without _total, a histogram without buckets...), naming it.
    const out = execFileSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(out).toBe("");
  });
});
