import type { App, Job } from "@proc/core";
import { type BackendName, type TestApp, createTestApp } from "@proc/testing";
import { afterAll, beforeAll, beforeEach } from "vitest";

/**
 * One app per describe block, emptied before each test. Cloning a database per test
 * would cost about a second each on PGlite; emptying the tables costs milliseconds and
 * gives every test an empty, migrated database (ids keep growing across tests).
 */
export function useSharedApp(backend: BackendName): { readonly app: App; readonly t: TestApp } {
  let t: TestApp | undefined;
  beforeAll(async () => {
    t = await createTestApp(backend);
  });
  afterAll(async () => {
    await t?.dispose();
  });
  beforeEach(async () => {
    // DELETE, not TRUNCATE: on tables this small it is several times faster on PGlite.
    const s = `"${t!.app.schema}"`;
    await t!.app.connector.query(
      `DELETE FROM ${s}.jobs; DELETE FROM ${s}.workers; DELETE FROM ${s}.periodic_defers`,
    );
  });
  return {
    get app() {
      return t!.app;
    },
    get t() {
      return t!;
    },
  };
}

/** A registered worker row, as a Worker would create, for driving JobManager by hand. */
export function registerWorker(
  app: App,
  name = "test-worker",
  queues: string[] | null = null,
): Promise<number> {
  return app.jobManager.registerWorker({ name, host: "test-host", pid: process.pid, queues, concurrency: 1 });
}

export async function getJob(app: App, id: number): Promise<Job> {
  const job = await app.jobManager.getJob(id);
  if (!job) throw new Error(`job ${id} not found`);
  return job;
}

export const eventTypes = (job: Job): string[] => job.events.map((e) => e.type);

/** Ids of a fetch, sorted: fetchJobs does not promise the order of a batch. */
export const idsOf = (jobs: readonly Job[]): number[] => jobs.map((j) => j.id).sort((a, b) => a - b);

/** Run one statement on the app's database (for backdating timestamps and the like). */
export function sql<Row = Record<string, unknown>>(
  app: App,
  text: string,
  params?: readonly unknown[],
): Promise<Row[]> {
  return app.connector.query<Row>(text.replaceAll("{schema}", `"${app.schema}"`), params);
}
