import type pg from "pg";
import type { SystemName } from "../config.js";
import type { JobArgs } from "../protocol.js";

/** The parent's side of a system, on a migrated database. */
export interface Producer {
  batchEnqueue(argsList: JobArgs[]): Promise<void>;
  enqueue(args: JobArgs): Promise<void>;
  /**
   * Insert `count` jobs that already finished, with one INSERT ... SELECT generate_series
   * in the system's own table format (what a long-lived table accumulates).
   */
  seedFinished(count: number): Promise<void>;
  /** Jobs queued or running. Read at the end of a drain only, so its cost is not measured. */
  remaining(): Promise<number>;
  close(): Promise<void>;
}

export interface ProducerContext {
  /** URL of the benchmark database, tagged with the parent's application_name. */
  databaseUrl: string;
  /** For the harness's own SQL (seeding, counting), outside the system's API. */
  sql: pg.Pool;
}

export interface WorkerSpec {
  databaseUrl: string;
  concurrency: number;
  /** A drain: the worker may stop by itself once nothing is left (proc's one-shot mode). */
  oneShot: boolean;
  /**
   * false: no LISTEN (PgBouncer in transaction mode), the worker polls. Only asked of
   * systems with `transactionPooling`.
   */
  listen: boolean;
  /** The job's handler: reports its start, and returns a promise when the job takes time. */
  onJob(args: JobArgs): void | Promise<void>;
}

export interface RunningWorker {
  stop(): Promise<void>;
}

export interface System {
  name: SystemName;
  /** Installs the system's schema (its own migrations) and opens a producer. */
  openProducer(context: ProducerContext): Promise<Producer>;
  /** Whether its worker runs through PgBouncer in transaction mode (`listen: false`). */
  transactionPooling?: boolean;
  /** In the worker child: start a worker and resolve once it runs. */
  startWorker(spec: WorkerSpec): Promise<RunningWorker>;
}
