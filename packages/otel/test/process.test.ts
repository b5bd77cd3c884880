// The trace context crosses processes: a job deferred here inside a span is run by a worker
// in a child process whose run spans link to that span, through its first attempt and its retry.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { App, silentLogger } from "@proc/core";
import { type TestDatabase, createTestDatabase, pgUrl } from "@proc/fixtures";
import { PgConnector } from "@proc/pg-connector";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { otel } from "../src/index.js";

const tsx = createRequire(import.meta.url).resolve("tsx");
const script = new URL("./fixtures/traced-worker.mts", import.meta.url).pathname;

interface SpanLine {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  links: string[];
  attributes: Record<string, unknown>;
  events: string[];
}

describe.skipIf(!pgUrl())("@proc/otel across processes", () => {
  let db: TestDatabase;
  let app: App;
  let spans: InMemorySpanExporter;
  let provider: BasicTracerProvider;

  beforeEach(async () => {
    db = await createTestDatabase("pg");
    spans = new InMemorySpanExporter();
    provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
    app = new App({
      connector: new PgConnector({ connectionString: db.url! }),
      logger: silentLogger,
    }).use(otel({ tracerProvider: provider, metrics: false }));
    await app.open();
  });

  afterEach(async () => {
    await app.close();
    await db.drop();
    await provider.shutdown();
  });

  it("a worker in another process links each run, and its retry, to the span that deferred the job", async () => {
    const id = await app.configureTask("traced", { allowUnknown: true, queue: "remote" }).defer({});
    const [producer] = spans.getFinishedSpans();
    expect(producer?.name).toBe("send remote");

    const child = spawn(process.execPath, ["--conditions=@proc/source", "--import", tsx, script], {
      env: { ...process.env, DATABASE_URL: db.url! },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(0);
    const remote = JSON.parse(out.trim().split("\n").at(-1)!) as SpanLine[];

    const runs = remote.filter((s) => s.name === "process remote");
    expect(runs.map((r) => r.attributes["proc.job.attempt"]).sort()).toEqual([1, 2]);
    for (const run of runs) {
      expect(run.kind).toBe(4);
      expect(run.links).toEqual([producer!.spanContext().spanId]);
      expect(run.attributes["messaging.message.id"]).toBe(String(id));
    }
    const inside = remote.filter((s) => s.name === "inside the task");
    expect(inside.map((s) => s.parentSpanId).sort()).toEqual(runs.map((r) => r.spanId).sort());
    expect((await app.jobManager.getJob(id))?.status).toBe("succeeded");
  });
});
