import type { SystemName } from "../config.js";
import type { System } from "./types.js";

export type { Producer, ProducerContext, RunningWorker, System, WorkerSpec } from "./types.js";

/**
 * Loaded on demand: a worker child imports only its own system, so a peer's run never
 * depends on proc's sources (which may be mid-edit in a working tree) and its RSS holds
 * no other system's code.
 */
const LOADERS: Record<SystemName, () => Promise<System>> = {
  proc: async () => (await import("./proc.js")).proc,
  "proc-small-heap": async () => (await import("./proc.js")).proc,
  "proc-delete": async () => (await import("./proc.js")).procDelete,
  "proc-otel": async () => (await import("./proc.js")).procOtel,
  "proc-otel-sdk": async () => (await import("./proc.js")).procOtelSdk,
  "proc-no-prefetch": async () => (await import("./proc.js")).procNoPrefetch,
  graphile: async () => (await import("./graphile.js")).graphile,
  "graphile-lq": async () => (await import("./graphile.js")).graphileLocalQueue,
  pgboss: async () => (await import("./pgboss.js")).pgboss,
  "pgboss-poll": async () => (await import("./pgboss.js")).pgbossPoll,
  "pgboss-naive": async () => (await import("./pgboss.js")).pgbossNaive,
  sql: async () => (await import("./sql.js")).sql,
  "sql-simple": async () => (await import("./sql.js")).sqlSimple,
};

export function loadSystem(name: SystemName): Promise<System> {
  return LOADERS[name]();
}

/** Worker-only variants enqueue exactly like their base system. */
export const SAME_PRODUCER_AS: Partial<Record<SystemName, SystemName>> = {
  "graphile-lq": "graphile",
  "proc-small-heap": "proc",
  "proc-delete": "proc",
  "proc-no-prefetch": "proc",
  "pgboss-poll": "pgboss",
  "pgboss-naive": "pgboss",
  "sql-simple": "sql",
};

/**
 * Node flags of a system's worker child. "proc-small-heap" is proc with V8's young
 * generation capped (2 MB semi-spaces instead of up to 16 MB): under a fast drain V8
 * grows it to its maximum, which is most of a worker's peak RSS above the ~56 MB of
 * an idle worker (Node plus pg). The variant shows what the cap saves and what it costs.
 */
export const CHILD_NODE_FLAGS: Partial<Record<SystemName, string[]>> = {
  "proc-small-heap": ["--max-semi-space-size=2"],
};
