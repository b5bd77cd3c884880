import { readFileSync } from "node:fs";
import pg from "pg";

/**
 * application_name of every connection the parent opens to a benchmark database
 * (producers, counters), so that the connection count shows the worker's alone.
 */
export const PARENT_APP_NAME = "proc-bench-parent";

/** The same server and credentials, another database. */
export function databaseUrl(baseUrl: string, database: string, applicationName?: string): string {
  const url = new URL(baseUrl);
  url.pathname = `/${database}`;
  if (applicationName) url.searchParams.set("application_name", applicationName);
  return url.toString();
}

/**
 * A pool whose idle-client errors are ignored. pg's `pool.end()` resolves before its
 * sockets are closed, so the DROP DATABASE ... WITH (FORCE) that follows can terminate
 * a closing client, and an 'error' event without a listener would crash the run.
 */
export function quietPool(connectionString: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString, max });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/** One connection to the server's maintenance database: creates and drops benchmark databases. */
export class Admin {
  readonly #client: pg.Client;
  readonly #baseUrl: string;
  #counter = 0;

  private constructor(client: pg.Client, baseUrl: string) {
    this.#client = client;
    this.#baseUrl = baseUrl;
  }

  static async connect(baseUrl: string): Promise<Admin> {
    const client = new pg.Client({ connectionString: baseUrl, application_name: PARENT_APP_NAME });
    await client.connect();
    return new Admin(client, baseUrl);
  }

  /** A server setting as SHOW prints it (with its unit: "128MB", "5min"). */
  async setting(name: string): Promise<string> {
    const { rows } = await this.#client.query<{ v: string }>("SELECT current_setting($1) AS v", [name]);
    return rows[0]!.v;
  }

  /** Run `fn` on a database created for it, dropped afterwards whatever happens. */
  async withFreshDatabase<T>(label: string, fn: (database: string) => Promise<T>): Promise<T> {
    const database =
      `bench_${process.pid}_${++this.#counter}_${label.replace(/[^a-z0-9]/gi, "_")}`.toLowerCase();
    await this.#client.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    try {
      return await fn(database);
    } finally {
      // FORCE: a worker child that failed may still hold connections.
      await this.#client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
    }
  }

  url(database: string, applicationName?: string): string {
    return databaseUrl(this.#baseUrl, database, applicationName);
  }

  /**
   * Sample the client connections to `database` that are not the parent's, every
   * `intervalMs`, until the returned function is called; it resolves with the peak.
   */
  monitorConnections(database: string, intervalMs = 100): () => Promise<number> {
    let peak = 0;
    let sampling: Promise<void> = Promise.resolve();
    const sample = () => {
      sampling = this.#client
        .query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = $1 AND backend_type = 'client backend' AND application_name <> $2`,
          [database, PARENT_APP_NAME],
        )
        .then(({ rows }) => {
          peak = Math.max(peak, rows[0]!.n);
        });
    };
    const timer = setInterval(sample, intervalMs);
    return async () => {
      clearInterval(timer);
      await sampling;
      return peak;
    };
  }

  /**
   * The CPU time of `database`'s server processes (every client backend: the system's
   * producer and worker connections), sampled every `intervalMs` from
   * /proc/<pid>/schedstat until the returned function is called, which resolves with the
   * total in microseconds; null where the server's processes cannot be read (a server on
   * another host). A backend's time counts from its first sample to its last: one that
   * both starts and ends between two samples is missed.
   */
  monitorCpu(database: string, intervalMs = 100): () => Promise<number | null> {
    const first = new Map<number, number>();
    const last = new Map<number, number>();
    let readable = true;
    const sample = async () => {
      const { rows } = await this.#client.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`,
        [database],
      );
      for (const { pid } of rows) {
        let ns: number;
        try {
          ns = Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]);
        } catch {
          // Gone since the query, or not on this host: the latter shows as no pid ever read.
          continue;
        }
        if (!first.has(pid)) first.set(pid, ns);
        last.set(pid, ns);
      }
      if (rows.length > 0 && first.size === 0) readable = false;
    };
    let sampling = sample();
    const timer = setInterval(() => {
      sampling = sampling.then(sample);
    }, intervalMs);
    return async () => {
      clearInterval(timer);
      await sampling;
      await sample();
      if (!readable || first.size === 0) return null;
      let total = 0;
      for (const [pid, ns] of last) total += ns - first.get(pid)!;
      return total / 1000;
    };
  }

  async close(): Promise<void> {
    await this.#client.end();
  }
}
