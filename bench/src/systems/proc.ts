import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { Worker, type WorkerOptions } from "@proc/worker";
import { quietPool } from "../db.js";
import type { JobArgs } from "../protocol.js";
import type { Producer, ProducerContext, System, WorkerSpec } from "./types.js";

const TASK = "noop";

/**
 * What a system adds for tracing: nothing; @proc/otel on OpenTelemetry's global no-op providers
 * (the cost of installing the plugin in an app without an SDK); or @proc/otel with the SDK
 * registered as an app would: spans batched to an exporter (one that drops them, so that only
 * proc's and the SDK's own cost is measured), metrics recorded into a reader collected every 60 s.
 */
type Tracing = "none" | "noop" | "sdk";

let sdkRegistered = false;
async function registerSdk(): Promise<void> {
  if (sdkRegistered) return;
  sdkRegistered = true;
  const api = await import("@opentelemetry/api");
  const { AsyncLocalStorageContextManager } = await import("@opentelemetry/context-async-hooks");
  const { BasicTracerProvider, BatchSpanProcessor } = await import("@opentelemetry/sdk-trace-base");
  const { MeterProvider, PeriodicExportingMetricReader } = await import("@opentelemetry/sdk-metrics");
  const discard = {
    export: (_items: unknown, done: (result: { code: number }) => void) => done({ code: 0 }),
    shutdown: async () => {},
  };
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] }),
  );
  api.metrics.setGlobalMeterProvider(
    new MeterProvider({
      readers: [
        new PeriodicExportingMetricReader({ exporter: discard as never, exportIntervalMillis: 60_000 }),
      ],
    }),
  );
}

/** An app with the benchmark's one task; quiet, as every system here is. */
async function makeApp(
  connector: PgConnector,
  onJob: (args: JobArgs) => void | Promise<void> = () => {},
  tracing: Tracing = "none",
) {
  const app = new App({ connector, logger: silentLogger });
  if (tracing !== "none") {
    if (tracing === "sdk") await registerSdk();
    const { otel } = await import("@proc/otel");
    // The queue gauges are read only at a collection, which a drain never reaches.
    app.use(otel());
  }
  const task = app.task<JobArgs>({ name: TASK }, async (args) => {
    await onJob(args);
  });
  return { app, task };
}

function producer(tracing: Tracing): System["openProducer"] {
  return async ({ databaseUrl, sql }: ProducerContext): Promise<Producer> => {
    // The parent's pool is its own (PgConnector's `pool` option): PgConnector.close()
    // stops listening for pool errors once pool.end() resolves, but pg resolves that
    // before the sockets are closed, and the DROP DATABASE ... WITH (FORCE) right after
    // then crashes the process with an unhandled 'error' event.
    const pool = quietPool(databaseUrl, 10);
    const { app, task } = await makeApp(new PgConnector({ pool }), undefined, tracing);
    await app.open();
    await app.migrate();
    return {
      async batchEnqueue(argsList) {
        await task.batchDefer(argsList);
      },
      async enqueue(args) {
        await task.defer(args);
      },
      async seedFinished(count) {
        await sql.query(
          `INSERT INTO proc.jobs (queue_name, task_name, args, status, attempts, events, created_at, started_at, finished_at)
           SELECT 'default', $2, jsonb_build_object('i', g), 'succeeded', 1, '[]', now(), now(), now()
           FROM generate_series(1, $1::int) AS g`,
          [count, TASK],
        );
        await sql.query("VACUUM ANALYZE proc.jobs");
      },
      async remaining() {
        // Two counts so that each is answered by a partial index (todo, doing).
        const { rows } = await sql.query<{ n: number }>(
          `SELECT ((SELECT count(*) FROM proc.jobs WHERE status = 'todo')
                 + (SELECT count(*) FROM proc.jobs WHERE status = 'doing'))::int AS n`,
        );
        return rows[0]!.n;
      },
      async close() {
        await app.close();
        await pool.end();
      },
    };
  };
}

export const proc: System = {
  name: "proc",
  openProducer: producer("none"),
  startWorker: startWorker({}),
  transactionPooling: true,
};

/** proc with `app.use(otel())` and no OpenTelemetry SDK: what the plugin costs when unused. */
export const procOtel: System = {
  name: "proc-otel",
  openProducer: producer("noop"),
  startWorker: startWorker({}, "noop"),
};

/** proc with `app.use(otel())` and the OpenTelemetry SDK recording every span and metric. */
export const procOtelSdk: System = {
  name: "proc-otel-sdk",
  openProducer: producer("sdk"),
  startWorker: startWorker({}, "sdk"),
};

/**
 * proc with `deleteJobs: "successful"`: a succeeded job is deleted instead of kept with
 * its history, as graphile-worker always does. Shows what keeping history costs.
 */
export const procDelete: System = {
  ...proc,
  name: "proc-delete",
  startWorker: startWorker({ deleteJobs: "successful" }),
};

/**
 * proc with `prefetch: 0`: it claims only for free slots (up to `fetchBatchSize` per round
 * trip), so that it holds no job it does not run. Shows what prefetching buys in the drains
 * and what it costs in memory (the memory scenario).
 */
export const procNoPrefetch: System = {
  ...proc,
  name: "proc-no-prefetch",
  startWorker: startWorker({ prefetch: 0 }),
};

function startWorker(
  options: Pick<WorkerOptions, "deleteJobs" | "prefetch">,
  tracing: Tracing = "none",
): System["startWorker"] {
  return async ({ databaseUrl, concurrency, oneShot, listen, onJob }: WorkerSpec) => {
    const { app } = await makeApp(new PgConnector({ connectionString: databaseUrl }), onJob, tracing);
    // No signal handlers: the child is stopped over IPC. A drain runs one-shot
    // (wait: false), the documented way to empty a queue; fetchBatchSize and prefetch
    // stay at their defaults. Without LISTEN (PgBouncer in transaction mode) as the
    // PgBouncer guide says: listenNotify false, the default poll interval.
    const worker = new Worker(app, {
      ...options,
      concurrency,
      handleSignals: false,
      wait: !oneShot,
      listenNotify: listen,
    });
    const started = new Promise<void>((resolve) => worker.once("worker:start", () => resolve()));
    const running = worker.run();
    await Promise.race([started, running]);
    return {
      async stop() {
        await worker.stop();
        await running;
      },
    };
  };
}
