import type { Sizes, SystemName } from "./config.js";
import {
  type Env,
  type Measure,
  type Scenario,
  argsBatches,
  enqueueAll,
  waitUntilFinished,
  withProducer,
} from "./harness.js";
import { memoryScenario } from "./memory.js";
import { now } from "./protocol.js";
import { fetchCostScenario } from "./fetch-cost.js";
import { flowScenario } from "./flow.js";
import { lateStartScenario, scaleOutScenarios } from "./scaleout.js";
import { percentile, sleep } from "./stats.js";
import { WorkerProcess } from "./worker-process.js";

export type { Env, Measure, Scenario } from "./harness.js";

/** An idle worker's concurrency in the latency runs: a common production setting. */
const LATENCY_CONCURRENCY = 10;

/** Untimed batches before the timed ones, for every system alike (see batchEnqueue). */
const WARM_UP_BATCHES = 5;

const batchEnqueue: Scenario = {
  id: "batch",
  needsWorker: false,
  run: (env, system, database) =>
    withProducer(env, system, database, async (producer) => {
      const { batchJobs, batchSize } = env.sizes;
      // Untimed batches first: connection setup, prepared statements and JIT are paid
      // once per process in real life, not per batch. One was not enough: V8 had not
      // optimised the per-job code yet, and a system's first repetition ran ~25% below its
      // later ones (proc 51,875 jobs/s, then 64,520 and 69,851; the floor 123,183-132,418).
      for (const batch of argsBatches(WARM_UP_BATCHES * batchSize, batchSize))
        await producer.batchEnqueue(batch);
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
      const { polledAt, left } = await waitUntilFinished(producer, deadline);
      const seconds = (polledAt - start) / 1000;
      const { memory } = await worker.stop();
      return {
        rate: (drainJobs - left) / seconds,
        partial: left > 0,
        peakRssBytes: memory.peakRss,
        peakConnections: await stopMonitor(),
      };
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
      let databaseCpuUs: number | null = null;
      try {
        await worker.started;
        await sleep(1000); // let it settle into its idle state (LISTEN, first empty poll)
        // What the database spends per job at this pace: defer, claim and completion,
        // plus the worker's polls and heartbeats meanwhile (all of the database's backends).
        const stopCpu = env.admin.monitorCpu(database);
        const start = now();
        for (let i = 0; i < latencyJobs; i++) {
          await sleep(start + i * latencyGapMs - now());
          const sentAt = now();
          await producer.enqueue({ i, sentAt });
          deferCalls.push(now() - sentAt);
        }
        const waitUntil = now() + 5000;
        while (worker.jobStarts.length < latencyJobs && now() < waitUntil) await sleep(10);
        // The last completions are written within a few milliseconds; one more gap of
        // idleness, as between any two jobs, is part of the pace.
        await sleep(Math.max(latencyGapMs, 200));
        databaseCpuUs = await stopCpu();
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
        ...(databaseCpuUs === null
          ? []
          : [
              {
                label: `4. database CPU per job at ${Math.round(1000 / latencyGapMs)} jobs/s`,
                unit: "µs",
                better: "lower" as const,
                value: databaseCpuUs / latencyJobs,
                partial,
              },
            ]),
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
    ["memory", memoryScenario],
    ...scaleOutScenarios(sizes, "direct").map((s): [string, Scenario] => ["scaleout", s]),
    ["latestart", lateStartScenario],
    ...scaleOutScenarios(sizes, "pgbouncer").map((s): [string, Scenario] => ["pgbouncer", s]),
    ["fetchcost", fetchCostScenario],
    ["flow", flowScenario],
  ];
  return list.filter(([id]) => only.includes(id)).map(([, scenario]) => scenario);
}
