/**
 * Many worker processes on one database: how a drain scales with the number of processes,
 * how evenly they share it, whether a worker that starts late gets work at once, and the
 * same drain through PgBouncer in transaction mode. See ../README.md, scenarios 7-9.
 */
import type { Sizes, SystemName } from "./config.js";
import {
  type Env,
  type Measure,
  type Scenario,
  enqueueAll,
  until,
  waitUntilFinished,
  withProducer,
} from "./harness.js";
import { PGBOUNCER_MISSING, PGBOUNCER_POOL_SIZE } from "./pgbouncer.js";
import { now } from "./protocol.js";
import { sleep } from "./stats.js";
import { WorkerProcess } from "./worker-process.js";

/** Systems whose worker runs without LISTEN, as transaction pooling requires. */
const TRANSACTION_POOLING_SYSTEMS: readonly SystemName[] = ["proc", "sql"];

interface SpreadResult {
  rate: number;
  partial: boolean;
  /** Each process's share of the jobs, as fractions. */
  shares: number[];
  peakConnections: number;
}

/**
 * Drain `jobs` with `processes` worker children of `concurrency` each, started together.
 * The clock starts when the first child is about to start its worker and stops when the
 * database says no job is left; the children report their counts over IPC as they go, so
 * the database is counted only once they have seen every job.
 */
async function drainAcross(
  env: Env,
  system: SystemName,
  database: string,
  options: {
    processes: number;
    concurrency: number;
    jobs: number;
    timeoutMs: number;
    workerUrl: string;
    noListen: boolean;
  },
): Promise<SpreadResult> {
  const { sizes } = env;
  return withProducer(env, system, database, async (producer) => {
    await enqueueAll(producer, options.jobs, sizes.batchSize);
    const stopMonitor = env.admin.monitorConnections(database);
    const workers = Array.from({ length: options.processes }, () =>
      WorkerProcess.start({
        system,
        databaseUrl: options.workerUrl,
        concurrency: options.concurrency,
        mode: "share",
        expectedJobs: options.jobs,
        noListen: options.noListen,
      }),
    );
    const started = await Promise.all(workers);
    try {
      const start = Math.min(...(await Promise.all(started.map((w) => w.starting))));
      const deadline = start + options.timeoutMs;
      const handled = () => started.reduce((sum, w) => sum + w.handled, 0);
      await until(() => handled() >= options.jobs, deadline);
      const { polledAt, left } = await waitUntilFinished(producer, deadline);
      const counts = (await Promise.all(started.map((w) => w.stop()))).map((r) => r.handled);
      const total = counts.reduce((a, b) => a + b, 0);
      return {
        rate: (options.jobs - left) / ((polledAt - start) / 1000),
        partial: left > 0,
        shares: counts.map((c) => (total ? c / total : 0)),
        peakConnections: await stopMonitor(),
      };
    } catch (error) {
      for (const w of started) w.kill();
      await stopMonitor();
      throw error;
    }
  });
}

/**
 * Scale-out (`scaleout`): drain `scaleoutJobs` no-op jobs with 1, 2, 4, 8 processes of
 * c=10 each, straight to Postgres (`direct`) or through PgBouncer in transaction mode
 * (`pgbouncer`, proc and the floor only: both run without LISTEN).
 */
export function scaleOutScenarios(sizes: Sizes, route: "direct" | "pgbouncer"): Scenario[] {
  const section = route === "direct" ? "7" : "9";
  const via = route === "direct" ? "" : `, via PgBouncer (transaction mode, pool ${PGBOUNCER_POOL_SIZE})`;
  return sizes.scaleoutProcesses.map(
    (processes): Scenario => ({
      id: `${route === "direct" ? "scaleout" : "pgbouncer"} n=${processes}`,
      needsWorker: true,
      ...(route === "pgbouncer" && { systems: TRANSACTION_POOLING_SYSTEMS }),
      async run(env, system, database) {
        const { scaleoutJobs: jobs, scaleoutConcurrency: concurrency } = env.sizes;
        const what = `${section}. scale-out drain ${jobs}${via}, ${processes} × c=${concurrency}`;
        let workerUrl = env.admin.url(database);
        if (route === "pgbouncer") {
          const bouncer = await env.pgbouncer();
          if (!bouncer)
            return [
              {
                label: `${section}. via PgBouncer: skipped, ${PGBOUNCER_MISSING}`,
                unit: "",
                better: "higher",
                value: Number.NaN,
              },
            ];
          workerUrl = bouncer.url(workerUrl);
        }
        const result = await drainAcross(env, system, database, {
          processes,
          concurrency,
          jobs,
          timeoutMs: env.sizes.scaleoutTimeoutMs,
          workerUrl,
          noListen: route === "pgbouncer",
        });
        const even = 100 / processes;
        const measures: Measure[] = [
          { label: what, unit: "jobs/s", better: "higher", value: result.rate, partial: result.partial },
          {
            label: `${what}: ${route === "direct" ? "" : "server "}connections`,
            unit: "conns",
            better: "lower",
            value: result.peakConnections,
          },
        ];
        if (processes > 1)
          measures.push(
            {
              label: `${what}: busiest process's share (even: ${even.toFixed(1)}%)`,
              unit: "%",
              better: "lower",
              value: Math.max(...result.shares) * 100,
            },
            {
              label: `${what}: idlest process's share (even: ${even.toFixed(1)}%)`,
              unit: "%",
              better: "higher",
              value: Math.min(...result.shares) * 100,
            },
          );
        return measures;
      },
    }),
  );
}

/**
 * Late start (`latestart`): slow jobs (lateJobMs each) and one worker (c=10); a second one
 * starts lateAfterMs later. Prefetching must not let the first hoard the queue: the second
 * should start a job at once (well within one poll interval: proc's is 5 s) and then take
 * about half of what is left.
 */
export const lateStartScenario: Scenario = {
  id: "latestart",
  needsWorker: true,
  run: (env, system, database) =>
    withProducer(env, system, database, async (producer) => {
      const { lateJobs, lateJobMs, lateAfterMs, scaleoutConcurrency: concurrency, batchSize } = env.sizes;
      await enqueueAll(producer, lateJobs, batchSize);
      const spec = {
        system,
        databaseUrl: env.admin.url(database),
        concurrency,
        mode: "share" as const,
        expectedJobs: lateJobs,
        jobMs: lateJobMs,
      };
      const first = await WorkerProcess.start(spec);
      let second: WorkerProcess | null = null;
      try {
        await first.firstJob;
        await sleep(lateAfterMs);
        second = await WorkerProcess.start(spec);
        const secondStarted = await second.started;
        const leftWhenStarted = lateJobs - first.handled;
        // Slow jobs: at most lateJobs × lateJobMs / concurrency of work, plus slack.
        const deadline = now() + (lateJobs * lateJobMs) / concurrency + 30_000;
        let firstJobAt = Number.NaN;
        void second.firstJob.then((at) => {
          firstJobAt = at;
        });
        await until(() => first.handled + second!.handled >= lateJobs, deadline);
        const { left } = await waitUntilFinished(producer, deadline);
        const [, late] = await Promise.all([first.stop(), second.stop()]);
        const what = `8. late start: ${lateJobs} jobs of ${lateJobMs} ms, c=${concurrency}, 2nd worker after ${lateAfterMs} ms`;
        return [
          {
            label: `${what}: its first job, after its start`,
            unit: "ms",
            better: "lower",
            value: firstJobAt - secondStarted,
            partial: Number.isNaN(firstJobAt) || left > 0,
          },
          {
            label: `${what}: its share of the jobs left then (even: 50%)`,
            unit: "%",
            better: "higher",
            value: leftWhenStarted > 0 ? (late.handled / leftWhenStarted) * 100 : Number.NaN,
            partial: left > 0,
          },
        ];
      } catch (error) {
        first.kill();
        second?.kill();
        throw error;
      }
    }),
};
