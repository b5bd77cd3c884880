/**
 * The benchmark's PgBouncer, in transaction mode: @proc/fixtures/pgbouncer's throwaway
 * instance (its own ini under /tmp, a spare port, stopped at the end of the run; the system
 * service is left alone), the one the chaos suite tests proc through.
 */
import { pgBouncerVersion, startPgBouncer as start } from "@proc/fixtures/pgbouncer";

/** Server connections PgBouncer keeps per database and user: the connection budget under test. */
export const PGBOUNCER_POOL_SIZE = 20;

export const PGBOUNCER_MISSING = "pgbouncer is not on PATH (apt-get install -y pgbouncer)";

export interface PgBouncer {
  version: string;
  /** `serverUrl` with host and port replaced by the bouncer's. */
  url(serverUrl: string): string;
  stop(): Promise<void>;
}

/** Start one in transaction mode in front of `serverUrl`'s server; null when not installed. */
export async function startPgBouncer(serverUrl: string): Promise<PgBouncer | null> {
  const version = pgBouncerVersion();
  if (version === null) return null;
  const bouncer = await start(serverUrl, {
    mode: "transaction",
    poolSize: PGBOUNCER_POOL_SIZE,
    maxClientConn: 1000,
  });
  return { version, url: bouncer.url, stop: () => bouncer.stop() };
}
