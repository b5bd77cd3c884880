/**
 * A worker in its own process, as in production: the parent's enqueuing and counting do
 * not share its event loop, and its RSS is its own. Driven over IPC (see protocol.ts).
 */
import type { ChildConfig, ChildMessage, JobArgs, MemoryReport, ParentMessage } from "./protocol.js";
import { now } from "./protocol.js";
import { loadSystem } from "./systems/index.js";

const RSS_SAMPLE_MS = 25;
/** "share" mode: the count goes to the parent at most this often (ms). */
const COUNT_EVERY_MS = 5;
/** How long after start the idle memory sample is taken (ms), when held memory is sampled. */
const IDLE_SAMPLE_AFTER_MS = 500;

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.send?.(message, undefined, {}, () => resolve()) ?? resolve());
}

/** Heap the worker holds: what survives a full GC (needs --expose-gc), JS heap plus external. */
function held(gc: () => void): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

async function main(config: ChildConfig): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const memory: MemoryReport = {
    peakRss: process.memoryUsage().rss,
    idleRss: Number.NaN,
    idleHeld: null,
    peakHeld: null,
  };
  const sampler = setInterval(() => {
    memory.peakRss = Math.max(memory.peakRss, process.memoryUsage().rss);
  }, RSS_SAMPLE_MS);
  const heldSampler =
    config.heldSampleMs && gc
      ? setInterval(() => {
          memory.peakHeld = Math.max(memory.peakHeld ?? 0, held(gc));
        }, config.heldSampleMs)
      : undefined;

  let handled = 0;
  let countTimer: NodeJS.Timeout | undefined;
  const sendCount = () => {
    countTimer = undefined;
    void send({ type: "count", handled });
  };
  const onJob = (args: JobArgs): void => {
    handled++;
    if (config.mode === "latency") {
      void send({ type: "job-start", sentAt: args.sentAt ?? Number.NaN, at: now() });
    } else if (config.mode === "share") {
      if (handled === 1) void send({ type: "first-job", at: now() });
      countTimer ??= setTimeout(sendCount, COUNT_EVERY_MS);
    } else if (handled === config.expectedJobs) {
      void send({ type: "handled-all", at: now() });
    }
  };
  const jobMs = config.jobMs ?? 0;
  const handler =
    jobMs > 0
      ? (args: JobArgs) => {
          onJob(args);
          return new Promise<void>((resolve) => setTimeout(resolve, jobMs));
        }
      : onJob;

  const stopRequested = new Promise<void>((resolve) =>
    process.on("message", (message: ParentMessage) => {
      if ("type" in message && message.type === "stop") resolve();
    }),
  );
  await send({ type: "starting", at: now() });
  const system = await loadSystem(config.system);
  const worker = await system.startWorker({
    databaseUrl: config.databaseUrl,
    concurrency: config.concurrency,
    oneShot: config.mode === "drain",
    listen: !config.noListen,
    onJob: handler,
  });
  await send({ type: "started", at: now() });
  setTimeout(() => {
    memory.idleRss = process.memoryUsage().rss;
    if (heldSampler && gc) memory.idleHeld = held(gc);
  }, IDLE_SAMPLE_AFTER_MS).unref();
  await stopRequested;
  await worker.stop();
  clearInterval(sampler);
  clearInterval(heldSampler);
  clearTimeout(countTimer);
  memory.peakRss = Math.max(memory.peakRss, process.memoryUsage().rss);
  await send({ type: "stopped", memory, handled });
  // Some libraries keep timers after stopping; the measurement is over, so do not wait.
  process.exit(0);
}

// The parent is gone (it crashed or was interrupted): do not keep working for nobody.
process.on("disconnect", () => process.exit(1));

process.once("message", (config: ChildConfig) => {
  main(config).catch(async (error: unknown) => {
    await send({
      type: "error",
      message: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    process.exit(1);
  });
});
