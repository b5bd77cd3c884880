import type { WorkerService } from "@proc/core";
import { sleep } from "./wakeup.js";

const SWEEP_BATCH = 1000;

/**
 * The worker's built-in service that ends expired jobs (JobOptions.expireIn / expireAt)
 * that no claim reached, every `intervalMs`, in bounded batches. A claim never starts an
 * expired job and cancels those it meets, so this only makes the others say so (status
 * cancelled, reason "expired") within seconds. It reads a partial index of the todo jobs
 * that have an expiry, so it costs next to nothing when there are none.
 */
export const expiryService = (intervalMs: number): WorkerService => ({
  name: "expiry",
  async run({ app, signal, logger }) {
    while (!signal.aborted) {
      try {
        let expired: number[];
        do {
          expired = await app.jobManager.expireJobs(SWEEP_BATCH);
          if (expired.length)
            logger.info(
              { action: "jobs_expired", jobIds: expired },
              `${expired.length} job(s) expired before they started: cancelled`,
            );
        } while (expired.length === SWEEP_BATCH && !signal.aborted);
      } catch (error) {
        if (signal.aborted) return;
        logger.warn({ action: "expiry_error", error }, "could not end expired jobs; trying again later");
      }
      await sleep(intervalMs, signal);
    }
  },
});
