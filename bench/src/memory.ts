/**
 * Memory (`memory`): what a worker holds beyond an idle one while it drains jobs with args
 * of a realistic size (10 KB), measured as the heap that survives a full GC (sampled every
 * HELD_SAMPLE_MS in the child, which then runs with --expose-gc) and as peak RSS. See
 * ../README.md, scenario 11.
 */
import { randomBytes } from "node:crypto";
import type { SystemName } from "./config.js";
import { type Env, type Scenario, enqueueAll, until, waitUntilFinished, withProducer } from "./harness.js";
import { type MemoryReport, now } from "./protocol.js";
import { sleep } from "./stats.js";
import { WorkerProcess } from "./worker-process.js";

/** How often the child forces a GC and reads what is left (slows its drain: not timed here). */
const HELD_SAMPLE_MS = 50;
/** An idle worker is measured this long after its start call returned (ms). */
const IDLE_FOR_MS = 1_500;
/** Jobs per enqueue call: 500 × 10 KB is 5 MB of JSON per statement. */
const MEMORY_BATCH = 500;

const MB = 2 ** 20;

/** Padding of `bytes` characters that compresses poorly (base64 of random bytes), as real payloads do. */
function padding(bytes: number): string {
  return randomBytes(Math.ceil((bytes * 3) / 4))
    .toString("base64")
    .slice(0, bytes);
}

async function idleWorker(env: Env, system: SystemName, database: string): Promise<MemoryReport> {
  const worker = await WorkerProcess.start({
    system,
    databaseUrl: env.admin.url(database),
    concurrency: env.sizes.memoryConcurrency,
    mode: "share",
    expectedJobs: 0,
    heldSampleMs: HELD_SAMPLE_MS,
  });
  try {
    await worker.started;
    await sleep(IDLE_FOR_MS);
    return (await worker.stop()).memory;
  } catch (error) {
    worker.kill();
    throw error;
  }
}

async function loadedWorker(env: Env, system: SystemName, database: string): Promise<MemoryReport> {
  const { memoryJobs: jobs, memoryArgsBytes: bytes, memoryConcurrency: concurrency } = env.sizes;
  return withProducer(env, system, database, async (producer) => {
    await enqueueAll(producer, jobs, MEMORY_BATCH, { pad: padding(bytes) });
    const worker = await WorkerProcess.start({
      system,
      databaseUrl: env.admin.url(database),
      concurrency,
      mode: "share",
      expectedJobs: jobs,
      heldSampleMs: HELD_SAMPLE_MS,
    });
    try {
      const deadline = (await worker.starting) + 120_000;
      await until(() => worker.handled >= jobs, deadline);
      await waitUntilFinished(producer, deadline);
      if (now() >= deadline) throw new Error(`${system}: the memory drain did not finish in 120 s`);
      return (await worker.stop()).memory;
    } catch (error) {
      worker.kill();
      throw error;
    }
  });
}

export const memoryScenario: Scenario = {
  id: "memory",
  needsWorker: true,
  async run(env, system, database) {
    // The idle worker first, on the empty database (its schema installed by a producer).
    const idle = await withProducer(env, system, database, () => idleWorker(env, system, database));
    const loaded = await loadedWorker(env, system, database);
    const { memoryJobs: jobs, memoryArgsBytes: bytes, memoryConcurrency: c } = env.sizes;
    const what = `11. memory, drain ${jobs} jobs of ${bytes / 1024} KB args, c=${c}`;
    const idleHeld = idle.idleHeld ?? Number.NaN;
    const peakHeld = loaded.peakHeld ?? Number.NaN;
    return [
      { label: "11. memory, idle worker: RSS", unit: "MB", better: "lower", value: idle.idleRss / MB },
      {
        label: "11. memory, idle worker: heap held (after GC)",
        unit: "MB",
        better: "lower",
        value: idleHeld / MB,
      },
      { label: `${what}: peak RSS`, unit: "MB", better: "lower", value: loaded.peakRss / MB },
      { label: `${what}: peak heap held (after GC)`, unit: "MB", better: "lower", value: peakHeld / MB },
      {
        label: `${what}: held beyond idle`,
        unit: "MB",
        better: "lower",
        value: (peakHeld - idleHeld) / MB,
      },
    ];
  },
};
