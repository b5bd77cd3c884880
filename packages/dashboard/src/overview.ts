// The overview's data, read once per change of the database rather than once per request.
// Its statements cost the database about 30 ms on 1,100,000 jobs (counting 100,000 waiting
// ones is most of it), while the activity signature the live feed polls costs under 1 ms and
// moves whenever jobs come, start, finish, change or go (see JobManager.activitySignature).
// So a request first reads the signature: while it is the one the cached overview was read
// under, and that read is younger than MAX_AGE_MS, the overview is served from memory. Every
// browser watching, a tab polling because its proxy buffers the event stream, a reload: one
// read of the database per change, whatever their number.
import type { App } from "@proc/core";
import type { OverviewData } from "./pages.js";

/**
 * How long an overview may be served while the signature holds still. What moves with time
 * alone is bounded by it: scheduled jobs coming due with no worker to start them, jobs
 * leaving the last hour, a worker going silent long enough to stall its jobs, and the
 * statistics counters of the signature, which lag a commit by about a second.
 */
const MAX_AGE_MS = 10_000;

interface Entry {
  signature: string;
  readAt: number;
  data: Promise<OverviewData>;
}

export class OverviewCache {
  readonly #app: App;
  #entry: Entry | null = null;

  constructor(app: App) {
    this.#app = app;
  }

  /** Something changed here or was announced (an action, a NOTIFY): read again next time. */
  invalidate(): void {
    this.#entry = null;
  }

  async get(): Promise<OverviewData> {
    const signature = await this.#app.jobManager.activitySignature();
    const now = Date.now();
    let entry = this.#entry;
    // The signature is read before the overview: a change between the two makes the next
    // request read again, never serve what predates it.
    if (!entry || entry.signature !== signature || now - entry.readAt >= MAX_AGE_MS) {
      entry = { signature, readAt: now, data: this.#read() };
      // Requests arriving while it is read share it (one read, however many browsers).
      this.#entry = entry;
      const current = entry;
      entry.data.catch(() => {
        if (this.#entry === current) this.#entry = null;
      });
    }
    const data = await entry.data;
    const elapsed = (now - entry.readAt) / 1000;
    if (elapsed <= 0) return data;
    // The oldest waiting jobs kept waiting while the overview sat in memory.
    return {
      ...data,
      queues: data.queues.map((q) =>
        q.ready > 0 ? { ...q, oldestReadySeconds: q.oldestReadySeconds + elapsed } : q,
      ),
    };
  }

  async #read(): Promise<OverviewData> {
    const jobs = this.#app.jobManager;
    const [queues, throughput, workers, stalled] = await Promise.all([
      jobs.queueSummary(3600),
      jobs.throughputPerMinute(60),
      jobs.listWorkers(),
      jobs.getStalledJobs(),
    ]);
    return { queues, throughput, workers, stalled: stalled.length };
  }
}
