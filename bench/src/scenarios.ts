import type { Sizes, SystemName } from "./config.js";
import { type Admin, PARENT_APP_NAME, quietPool } from "./db.js";
import { type JobArgs, now } from "./protocol.js";
import { percentile, sleep } from "./stats.js";
import { type Producer, loadSystem } from "./systems/index.js";
import { WorkerProcess } from "./worker-process.js";

/** One number a run produced, named by the table row it belongs to. */
export interface Measure {
  label: string;
  unit: string;
  better: "higher" | "lower";
  value: number;
  /** The drain hit its time limit: the rate is over the jobs done by then. */
  partial?: boolean;
}

/** One scenario run of one system on its own fresh database. */
export interface Scenario {
  id: string;
  /** Skip worker-only variants (they enqueue exactly like their base system). */
  needsWorker: boolean;
  run(env: Env, system: SystemName, database: string): Promise<Measure[]>;
}

export interface Env {
  admin: Admin;
  sizes: Sizes;
}

/** An idle worker's concurrency in the latency runs: a common production setting. */
const LATENCY_CONCURRENCY = 10;
/** How often the end of a drain is checked, in ms (the count itself is an index scan). */
const DRAIN_POLL_MS = 5;

async function withProducer<T>(
  env: Env,
  system: SystemName,
  database: string,
  fn: (producer: Producer) => Promise<T>,
): Promise<T> {
  const databaseUrl = env.admin.url(database, PARENT_APP_NAME);
  const sql = quietPool(databaseUrl, 2);
  const producer = await (await loadSystem(system)).openProducer({ databaseUrl, sql });
  try {
    return await fn(producer);
  } finally {
    await producer.close();
    await sql.end();
  }
}

function argsBatches(count: number, batchSize: number): JobArgs[][] {
  const batches: JobArgs[][] = [];
  for (let start = 0; start < count; start += batchSize)
    batches.push(Array.from({ length: Math.min(batchSize, count - start) }, (_, k) => ({ i: start + k })));
  return batches;
}

async function enqueueAll(producer: Producer, count: number, batchSize: number): Promise<void> {
  for (const batch of argsBatches(count, batchSize)) await producer.batchEnqueue(batch);
}

const batchEnqueue: Scenario = {
  id: "batch",
  needsWorker: false,
  run: (env, system, database) =>
    withProducer(env, system, database, async (producer) => {
      const { batchJobs, batchSize } = env.sizes;
      // One untimed batch first: connection setup, prepared statements and JIT are paid
      // once per process in real life, not per batch.
      await producer.batchEnqueue(argsBatches(batchSize, batchSize)[0]!);
      const batches = argsBatches(batchJobs, batchSize);
      const start = now();
      for (const batch of batches) await producer.batchEnqueue(batch);
      const seconds = (now() - start) / 1000;
      return [
        {
          label: `1. batch enqueue (${batchSize}/call)`,
          unit: "jobs/s",
          better: "higher",
          value: batchJobs / seconds,
        },
      ];
    }),
};

const singleEnqueue: Scenario = {
  id: "single",
  needsWorker: false,
  run: (env, system, database) =>
    withProducer(env, system, database, async (producer) => {
      const { singleJobs } = env.sizes;
      for (let i = 0; i < 20; i++) await producer.enqueue({ i: -1 }); // warm-up, untimed
      const start = now();
      for (let i = 0; i < singleJobs; i++) await producer.enqueue({ i });
      const seconds = (now() - start) / 1000;
      return [
        { label: "2. single awaited enqueue", unit: "jobs/s", better: "higher", value: singleJobs / seconds },
      ];
    }),
};

/**
 * Pre-queue jobs, start a worker child, and time from its start call until the database
 * says every job is finished. The child reports when its handlers have seen every job;
 * only then does the parent count, so counting does not load the database mid-drain.
 */
async function drain(
  env: Env,
  system: SystemName,
  database: string,
  concurrency: number,
  historyRows: number,
): Promise<{ rate: number; partial: boolean; peakRssBytes: number; peakConnections: number }> {
  return withProducer(env, system, database, async (producer) => {
    const { drainJobs, batchSize, drainTimeoutMs } = env.sizes;
    if (historyRows > 0) await producer.seedFinished(historyRows);
    await enqueueAll(producer, drainJobs, batchSize);
    const stopMonitor = env.admin.monitorConnections(database);
    const worker = await WorkerProcess.start({
      system,
      databaseUrl: env.admin.url(database),
      concurrency,
      mode: "drain",
      expectedJobs: drainJobs,
    });
    try {
      const start = await worker.starting;
      const deadline = start + drainTimeoutMs;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        worker.handledAll,
        new Promise((resolve) => {
          timer = setTimeout(resolve, Math.max(0, deadline - now()));
        }),
      ]);
      clearTimeout(timer);
      for (;;) {
        // The count's snapshot is taken after `polledAt`: zero then means every job
        // finished by `polledAt` (give or take a round trip).
        const polledAt = now();
        const left = await producer.remaining();
        if (left === 0 || polledAt >= deadline) {
          const seconds = (polledAt - start) / 1000;
          const peakRssBytes = await worker.stop();
          return {
            rate: (drainJobs - left) / seconds,
            partial: left > 0,
            peakRssBytes,
            peakConnections: await stopMonitor(),
          };
        }
        await sleep(DRAIN_POLL_MS);
      }
    } catch (error) {
      worker.kill();
      await stopMonitor();
      throw error;
    }
  });
}

function drainScenario(concurrency: number, reportResources: boolean): Scenario {
  return {
    id: `drain c=${concurrency}`,
    needsWorker: true,
    async run(env, system, database) {
      const result = await drain(env, system, database, concurrency, 0);
      const measures: Measure[] = [
        {
          label: `3. drain ${env.sizes.drainJobs} no-op jobs, c=${concurrency}`,
          unit: "jobs/s",
          better: "higher",
          value: result.rate,
          partial: result.partial,
        },
      ];
      if (reportResources)
        measures.push(
          {
            label: `6. worker peak RSS, drain c=${concurrency}`,
            unit: "MB",
            better: "lower",
            value: result.peakRssBytes / 2 ** 20,
          },
          {
            label: `6. worker connections, drain c=${concurrency}`,
            unit: "conns",
            better: "lower",
            value: result.peakConnections,
          },
        );
      return measures;
    },
  };
}

const history: Scenario = {
  id: "history",
  needsWorker: true,
  async run(env, system, database) {
    const { historyRows, historyConcurrency, drainJobs } = env.sizes;
    const result = await drain(env, system, database, historyConcurrency, historyRows);
    const rows = historyRows >= 1e6 ? `${historyRows / 1e6}M` : `${historyRows / 1e3}k`;
    return [
      {
        label: `5. drain ${drainJobs}, c=${historyConcurrency}, ${rows} finished rows in table`,
        unit: "jobs/s",
        better: "higher",
        value: result.rate,
        partial: result.partial,
      },
    ];
  },
};

/** Enqueue at a steady pace to an idle worker; time from the defer call to the handler. */
const latency: Scenario = {
  id: "latency",
  needsWorker: true,
  run: (env, system, database) =>
    withProducer(env, system, database, async (producer) => {
      const { latencyJobs, latencyGapMs } = env.sizes;
      const worker = await WorkerProcess.start({
        system,
        databaseUrl: env.admin.url(database),
        concurrency: LATENCY_CONCURRENCY,
        mode: "latency",
        expectedJobs: latencyJobs,
      });
      // How long the awaited defer call itself took: part of every latency.
      const deferCalls: number[] = [];
      try {
        await worker.started;
        await sleep(1000); // let it settle into its idle state (LISTEN, first empty poll)
        const start = now();
        for (let i = 0; i < latencyJobs; i++) {
          await sleep(start + i * latencyGapMs - now());
          const sentAt = now();
          await producer.enqueue({ i, sentAt });
          deferCalls.push(now() - sentAt);
        }
        const waitUntil = now() + 5000;
        while (worker.jobStarts.length < latencyJobs && now() < waitUntil) await sleep(10);
        await worker.stop();
      } catch (error) {
        worker.kill();
        throw error;
      }
      const delays = worker.jobStarts.map((s) => s.at - s.sentAt);
      const partial = delays.length < latencyJobs;
      return [
        ...[50, 95, 99].map((p) => ({
          label: `4. enqueue→start latency p${p}`,
          unit: "ms",
          better: "lower" as const,
          value: percentile(delays, p),
          partial,
        })),
        {
          label: "4. of which the awaited defer call, p50",
          unit: "ms",
          better: "lower",
          value: percentile(deferCalls, 50),
        },
      ];
    }),
};

export function scenarios(sizes: Sizes, only: readonly string[]): Scenario[] {
  const list: Array<[string, Scenario]> = [
    ["batch", batchEnqueue],
    ["single", singleEnqueue],
    ...sizes.drainConcurrencies.map((c): [string, Scenario] => ["drain", drainScenario(c, c >= 10)]),
    ["latency", latency],
    ["history", history],
  ];
  return list.filter(([id]) => only.includes(id)).map(([, scenario]) => scenario);
}
