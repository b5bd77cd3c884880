/**
 * The Connector seam: transport only. A connector runs parameterised SQL, runs a
 * function inside one transaction, listens to NOTIFY channels, and closes. It knows
 * nothing about jobs; JobManager is the only code that names SQL operations.
 *
 * Connectors translate driver errors at this edge: a unique violation becomes
 * {@link UniqueViolation} carrying the constraint name, a lost connection becomes
 * {@link ConnectionError}, and so on (see errors.ts).
 */

/** Anything that can run one parameterised statement and give rows back. */
export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
}

/**
 * A caller's own connection or transaction, as the drivers hand it out: a
 * `pg` PoolClient/Client or a PGlite Transaction both satisfy this shape. Passing one
 * to `defer(args, { connection })` makes the defer part of the caller's transaction.
 */
export interface DriverConnection {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface Notification {
  channel: string;
  payload: string;
}

export interface ListenOptions {
  channels: readonly string[];
  onNotification: (notification: Notification) => void;
  /**
   * Called when the listening connection is (re)established ("connected") or lost
   * ("disconnected"). Notifications sent while disconnected are lost, so a consumer
   * should re-check the database after each "connected" that follows a
   * "disconnected".
   */
  onStateChange?: (state: "connected" | "disconnected", error?: Error) => void;
}

export interface Listener {
  /** Stop listening and release the connection. Idempotent. */
  close(): Promise<void>;
}

/** Connections set apart from the connector's pool (see {@link Connector.reserve}). */
export interface ReservedConnections extends Queryable {
  /** Release them. Idempotent. */
  close(): Promise<void>;
}

export interface Connector extends Queryable {
  /** Open pools/instances. Idempotent. */
  open(): Promise<void>;
  /** Close everything this connector opened (never a pool the user passed in). Idempotent. */
  close(): Promise<void>;
  /**
   * Run `fn` inside one transaction on one connection: committed when it resolves,
   * rolled back when it throws (and the error rethrown, translated).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Listen to channels on a dedicated connection that reconnects on its own. */
  listen(options: ListenOptions): Promise<Listener>;
  /**
   * Up to `size` connections of their own, outside the pool that `query` and tasks
   * share: the worker runs its bookkeeping (fetch, complete, heartbeat) on them, so
   * tasks that hold every pooled connection cannot starve it. A connector with a
   * single session (PGlite) may return a view of that session.
   */
  reserve(size: number): ReservedConnections;
  /** Adapt a caller's connection (see {@link DriverConnection}), translating its errors. */
  wrapConnection(connection: DriverConnection): Queryable;
  /**
   * Whether this connector's sessions are separate processes (real Postgres) or a
   * single in-process session (PGlite, where advisory locks always succeed and
   * SKIP LOCKED never skips). Informational; used by tests and diagnostics.
   */
  readonly kind: string;
}
