// Type-checked only (tsc --noEmit): the module shape of DESIGN.md §3, an exported app
// built with .use(scheduler()), must accept the hand-written recipe unchanged.
import { App, type Connector } from "@proc/core";
import { scheduler } from "@proc/scheduler";
import { retryStalledJobs } from "../src/index.js";

declare const connector: Connector;

export const app = new App({ connector }).use(scheduler()).use(retryStalledJobs());

app.periodic(
  { cron: "*/10 * * * *" },
  app.task(
    { name: "retry_stalled_jobs", queueingLock: "retry_stalled_jobs" },
    // biome-ignore lint/correctness/noUnusedFunctionParameters: verbatim from DESIGN.md §3.
    async (_args: { timestamp: number }, ctx) => {
      for (const job of await app.jobManager.getStalledJobs({ nbSeconds: 30 }))
        await app.jobManager.retryJob(job);
    },
  ),
);
