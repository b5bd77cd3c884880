/**
 * A worker in its own process, as in production: the parent's enqueuing and counting do
 * not share its event loop, and its RSS is its own. Driven over IPC (see protocol.ts).
 */
import type { ChildConfig, ChildMessage, JobArgs, ParentMessage } from "./protocol.js";
import { now } from "./protocol.js";
import { loadSystem } from "./systems/index.js";

const RSS_SAMPLE_MS = 25;

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.send?.(message, undefined, {}, () => resolve()) ?? resolve());
}

async function main(config: ChildConfig): Promise<void> {
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, RSS_SAMPLE_MS);

  let handled = 0;
  const onJob = (args: JobArgs): void => {
    if (config.mode === "latency") {
      void send({ type: "job-start", sentAt: args.sentAt ?? Number.NaN, at: now() });
    } else if (++handled === config.expectedJobs) {
      void send({ type: "handled-all", at: now() });
    }
  };

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
    onJob,
  });
  await send({ type: "started", at: now() });
  await stopRequested;
  await worker.stop();
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  await send({ type: "stopped", peakRssBytes: peakRss });
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
