import { PGlite } from "@electric-sql/pglite";
import {
  ConnectionError,
  type Connector,
  ConnectorError,
  type DriverConnection,
  InvalidOptions,
  type Listener,
  type ListenOptions,
  type Logger,
  type Queryable,
  type ReservedConnections,
  silentLogger,
  translateDriverError,
} from "@proc/core";

/** What both a PGlite instance and one of its transactions can do, as far as the connector uses it. */
export interface PGliteSession {
  query<Row>(sql: string, params?: unknown[]): Promise<{ rows: Row[] }>;
  exec(sql: string): Promise<Array<{ rows: unknown[] }>>;
}

/**
 * The part of a PGlite instance the connector uses, written out here rather than imported from
 * @electric-sql/pglite: PGlite's own declarations need the DOM lib and @types/emscripten, so
 * naming them in this package's types would break a user's `tsc` under `skipLibCheck: false`
 * even when the user never touches PGlite directly. Every `PGlite` instance satisfies it.
 */
export interface PGliteInstance extends PGliteSession {
  readonly closed: boolean;
  readonly waitReady: Promise<void>;
  transaction<T>(fn: (tx: PGliteSession) => Promise<T>): Promise<T>;
  listen(channel: string, callback: (payload: string) => void): Promise<unknown>;
  unlisten(channel: string, callback?: (payload: string) => void): Promise<void>;
  dumpDataDir(compression?: "none" | "gzip" | "auto"): Promise<File | Blob>;
  close(): Promise<void>;
}

export interface PGliteConnectorOptions {
  /** Directory holding the database files; omit for an in-memory database. */
  dataDir?: string;
  /** An instance you own: used as is and never closed by `close()`. Excludes `dataDir` and `loadDataDir`. */
  pglite?: PGliteInstance;
  /** A data directory dump (from {@link PGliteConnector.dumpDataDir}) to start from instead of an empty database. */
  loadDataDir?: Blob | File;
  /** Structured logger (pino works). @defaultValue silentLogger */
  logger?: Logger;
}

const noop = () => {};

/**
 * Connector over PGlite: Postgres compiled to WebAssembly, in this process, as ONE session.
 * Consequences users see: advisory locks always succeed (every caller is the same session),
 * SKIP LOCKED never skips, and LISTEN/NOTIFY only reaches listeners in this process.
 *
 * Serialisation comes from PGlite itself: `db.query()` and `db.exec()` take the same mutex
 * as `db.transaction()`, so a statement from outside a transaction waits until it commits
 * or rolls back rather than running inside it. The flip side: calling the connector (not
 * the `tx` argument) from inside a transaction's fn and awaiting it waits forever.
 */
export class PGliteConnector implements Connector {
  readonly kind = "pglite";
  readonly #userDb: PGliteInstance | undefined;
  readonly #dataDir: string | undefined;
  readonly #loadDataDir: Blob | File | undefined;
  readonly #logger: Logger;
  readonly #listeners = new Set<PGliteListener>();
  #db: PGliteInstance | undefined;
  #opening: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: PGliteConnectorOptions = {}) {
    if (options.pglite && (options.dataDir !== undefined || options.loadDataDir)) {
      throw new InvalidOptions("PGliteConnector", [
        "pglite: pass either an instance you own, or dataDir/loadDataDir for one the connector owns",
      ]);
    }
    this.#userDb = options.pglite;
    this.#dataDir = options.dataDir;
    this.#loadDataDir = options.loadDataDir;
    this.#logger = (options.logger ?? silentLogger).child({ connector: "pglite" });
  }

  open(): Promise<void> {
    this.#opening ??= this.#open().catch((error: unknown) => {
      this.#opening = undefined;
      throw error;
    });
    return this.#opening;
  }

  async #open(): Promise<void> {
    if (this.#userDb) {
      await this.#userDb.waitReady;
      this.#db = this.#userDb;
      return;
    }
    try {
      this.#db = await PGlite.create({ dataDir: this.#dataDir, loadDataDir: this.#loadDataDir });
    } catch (error) {
      const where = this.#dataDir === undefined ? "in memory" : `in ${this.#dataDir}`;
      throw new ConnectionError(
        `could not start PGlite ${where}: ${(error as Error)?.message ?? String(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close().finally(() => {
      this.#closing = undefined;
    });
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.#opening?.catch(noop);
    await Promise.all([...this.#listeners].map((listener) => listener.close()));
    const db = this.#db;
    this.#db = undefined;
    this.#opening = undefined;
    if (db && db !== this.#userDb && !db.closed) await db.close();
  }

  async query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]> {
    return runOn<Row>(this.#requireDb("query"), sql, params);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const db = this.#requireDb("transaction");
    let failure: { error: unknown } | undefined;
    try {
      return await db.transaction(async (tx) => {
        try {
          return await fn({
            query: <Row>(sql: string, params?: readonly unknown[]) => runOn<Row>(tx, sql, params),
          });
        } catch (error) {
          failure = { error };
          throw error;
        }
      });
    } catch (error) {
      // fn's errors are rethrown as they are (its statements were translated already);
      // only BEGIN/COMMIT/ROLLBACK errors come from the driver here.
      if (failure) throw failure.error;
      throw translateDriverError(error);
    }
  }

  /** PGlite is one session: reserved connections are that same session (it queues). */
  reserve(_size: number): ReservedConnections {
    return { query: (sql, params) => this.query(sql, params), close: async () => {} };
  }

  wrapConnection(connection: DriverConnection): Queryable {
    return {
      async query<Row>(sql: string, params?: readonly unknown[]): Promise<Row[]> {
        try {
          return (await connection.query(sql, params as unknown[] | undefined)).rows as Row[];
        } catch (error) {
          throw translateDriverError(error);
        }
      },
    };
  }

  async listen(options: ListenOptions): Promise<Listener> {
    const db = this.#requireDb("listen");
    const bad = options.channels.filter((channel) => channel.includes('"') || channel.length === 0);
    if (bad.length > 0) {
      throw new InvalidOptions(
        "PGliteConnector.listen",
        bad.map(
          (channel) =>
            `channels: ${JSON.stringify(channel)} cannot be listened to with PGlite (empty or contains ")`,
        ),
      );
    }
    const listener = new PGliteListener(db, options, this.#logger, (closed) =>
      this.#listeners.delete(closed),
    );
    this.#listeners.add(listener);
    try {
      await listener.start();
    } catch (error) {
      await listener.close();
      throw translateDriverError(error);
    }
    return listener;
  }

  /**
   * The whole data directory as an uncompressed tarball, for `loadDataDir`: migrate once,
   * dump, and start each test's instance from the dump (about a second) instead of running
   * initdb (several seconds). Take it while no transaction is running.
   */
  async dumpDataDir(): Promise<File | Blob> {
    return this.#requireDb("dump the data directory").dumpDataDir("none");
  }

  #requireDb(action: string): PGliteInstance {
    if (!this.#db) {
      throw new ConnectorError(
        `cannot ${action}: the PGliteConnector is not open; call await app.open() first`,
      );
    }
    return this.#db;
  }
}

/**
 * A parameterless text goes through the simple protocol, which accepts several statements
 * (migrations are such texts), as pg does; with parameters, the extended protocol.
 */
async function runOn<Row>(session: PGliteSession, sql: string, params?: readonly unknown[]): Promise<Row[]> {
  try {
    if (params === undefined || params.length === 0) {
      const results = await session.exec(sql);
      return (results.at(-1)?.rows ?? []) as Row[];
    }
    return (await session.query<Row>(sql, params as unknown[])).rows;
  } catch (error) {
    throw translateDriverError(error);
  }
}

/**
 * LISTEN in the one PGlite session. Nothing can disconnect it, so it reports "connected"
 * once. It unsubscribes with `db.unlisten(quoted, callback)` rather than the function
 * `db.listen` returns, which drops the quotes and so misses case-sensitive channel names.
 */
class PGliteListener implements Listener {
  readonly #db: PGliteInstance;
  readonly #options: ListenOptions;
  readonly #logger: Logger;
  readonly #onClosed: (listener: PGliteListener) => void;
  readonly #subscribed: { quoted: string; callback: (payload: string) => void }[] = [];
  #closing: Promise<void> | undefined;

  constructor(
    db: PGliteInstance,
    options: ListenOptions,
    logger: Logger,
    onClosed: (listener: PGliteListener) => void,
  ) {
    this.#db = db;
    this.#options = options;
    this.#logger = logger;
    this.#onClosed = onClosed;
  }

  async start(): Promise<void> {
    for (const channel of this.#options.channels) {
      // Quoted so the name is taken as is, like pg's escapeIdentifier: "Jobs" is not "jobs".
      const quoted = `"${channel}"`;
      const callback = (payload: string) => this.#deliver(channel, payload);
      await this.#db.listen(quoted, callback);
      this.#subscribed.push({ quoted, callback });
    }
    try {
      this.#options.onStateChange?.("connected");
    } catch (error) {
      this.#logger.error(
        { action: "listen_state_handler_error", state: "connected", error },
        "a listen state handler threw",
      );
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#onClosed(this);
    const subscribed = this.#subscribed.splice(0);
    // A user-owned instance may already be closed; its registrations died with it.
    if (this.#db.closed) return;
    for (const { quoted, callback } of subscribed) await this.#db.unlisten(quoted, callback);
  }

  #deliver(channel: string, payload: string): void {
    // PGlite calls listeners from a microtask, where a throw is an uncaught exception.
    try {
      this.#options.onNotification({ channel, payload });
    } catch (error) {
      this.#logger.error(
        { action: "listen_notification_error", channel, error },
        "a notification handler threw",
      );
    }
  }
}
