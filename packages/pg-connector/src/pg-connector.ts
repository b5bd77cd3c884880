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
  checkDuration,
  redact,
  silentLogger,
  translateDriverError,
} from "@proc/core";
import { Client, type ClientConfig, DatabaseError, Pool, type PoolClient, type PoolConfig } from "pg";
import { PgListener, type ReconnectDelays } from "./listener.js";
import { type DriverResult, reasonOf, rowsOf } from "./rows.js";

export interface PgConnectorOptions {
  /** `postgres://user:password@host:port/database`. Without it (and without `poolConfig`), pg reads the PG* environment variables. */
  connectionString?: string;
  /** A pool you own: used as is and never ended by `close()`. Excludes `connectionString` and `poolConfig`. */
  pool?: Pool;
  /** Options of the pool this connector creates (`max`, `ssl`, timeouts...). */
  poolConfig?: PoolConfig;
  /** Structured logger (pino works). @defaultValue silentLogger */
  logger?: Logger;
  /** Backoff of the listen connection's reconnects. @defaultValue `{ initialDelayMs: 100, maxDelayMs: 5000 }` */
  listenReconnect?: Partial<ReconnectDelays>;
}

/** Every default in one place. */
const PG_CONNECTOR_DEFAULTS = {
  listenReconnect: { initialDelayMs: 100, maxDelayMs: 5_000 },
  /**
   * pg waits forever for a connect by default; an unreachable host would hang open() and
   * every query instead of failing with a message.
   */
  connectionTimeoutMillis: 10_000,
  /**
   * The listen connection sits idle for hours; without TCP keepalive a connection dropped
   * silently (by a NAT or a failover) is never noticed and notifications just stop.
   */
  listenKeepAliveInitialDelayMillis: 10_000,
} as const;

/**
 * Connector over node-postgres: a pool for queries and transactions, plus one dedicated
 * connection per listener.
 */
export class PgConnector implements Connector {
  readonly kind = "pg";
  readonly #userPool: Pool | undefined;
  readonly #config: PoolConfig;
  readonly #delays: ReconnectDelays;
  readonly #logger: Logger;
  readonly #target: string;
  readonly #listeners = new Set<PgListener>();
  readonly #reserved = new Set<ReservedConnections>();
  #pool: Pool | undefined;
  #opening: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: PgConnectorOptions = {}) {
    const delays = { ...PG_CONNECTOR_DEFAULTS.listenReconnect, ...options.listenReconnect };
    validate(options, delays);
    this.#userPool = options.pool;
    this.#config = options.pool
      ? options.pool.options
      : {
          connectionTimeoutMillis: PG_CONNECTOR_DEFAULTS.connectionTimeoutMillis,
          ...options.poolConfig,
          ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }),
        };
    this.#delays = delays;
    this.#logger = (options.logger ?? silentLogger).child({ connector: "pg" });
    this.#target = describeTarget(this.#config);
  }

  open(): Promise<void> {
    this.#opening ??= this.#open().catch((error: unknown) => {
      this.#opening = undefined;
      throw error;
    });
    return this.#opening;
  }

  async #open(): Promise<void> {
    const pool = this.#userPool ?? new Pool(this.#config);
    // An idle client whose server goes away makes the pool emit "error"; with no listener
    // that event would crash the process. The pool replaces the client on its own.
    pool.on("error", this.#onPoolError);
    try {
      const client = await pool.connect().catch((error: unknown) => {
        throw this.#connectError(error);
      });
      client.release();
    } catch (error) {
      pool.off("error", this.#onPoolError);
      if (!this.#userPool) await pool.end();
      throw error;
    }
    this.#pool = pool;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close().finally(() => {
      this.#closing = undefined;
    });
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.#opening?.catch(() => {});
    await Promise.all([...this.#listeners].map((listener) => listener.close()));
    await Promise.all([...this.#reserved].map((reserved) => reserved.close()));
    const pool = this.#pool;
    this.#pool = undefined;
    this.#opening = undefined;
    if (!pool) return;
    if (pool === this.#userPool) {
      pool.off("error", this.#onPoolError);
      return;
    }
    // Our listener stays on the discarded pool: pool.end() resolves before its
    // clients' sockets have closed, and the server may still terminate one meanwhile
    // (DROP DATABASE ... WITH (FORCE), a restart); the pool re-emits that as 'error',
    // which without a listener would crash the process.
    await pool.end();
  }

  async query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]> {
    return this.#queryOn(this.#requirePool("query"), sql, params);
  }

  /**
   * A pool of `size` connections of its own (same settings), outside the main pool: the
   * worker's bookkeeping runs there, so tasks holding every pooled connection cannot
   * starve heartbeats and completions. Ended by `close()` or by the connector's close.
   */
  reserve(size: number): ReservedConnections {
    this.#requirePool("reserve connections");
    const pool = new Pool({ ...this.#config, max: size });
    pool.on("error", this.#onPoolError);
    const reserved: ReservedConnections = {
      query: (sql, params) => this.#queryOn(pool, sql, params),
      close: async () => {
        if (!this.#reserved.delete(reserved)) return;
        await pool.end(); // the error listener stays: see #close
      },
    };
    this.#reserved.add(reserved);
    return reserved;
  }

  async #queryOn<Row>(pool: Pool, sql: string, params?: readonly unknown[]): Promise<Row[]> {
    const lease = await this.#checkout(pool);
    try {
      return await lease.query<Row>(sql, params);
    } finally {
      lease.release();
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const lease = await this.#checkout(this.#requirePool("run a transaction"));
    try {
      await lease.query("BEGIN");
      let result: T;
      try {
        result = await fn(lease.queryable);
      } catch (error) {
        await lease.rollback();
        // Rethrown as is: driver errors inside fn were translated by the queryable already,
        // and the caller's own errors are theirs.
        throw error;
      }
      await lease.commit();
      return result;
    } finally {
      lease.release();
    }
  }

  wrapConnection(connection: DriverConnection): Queryable {
    return {
      async query<Row>(sql: string, params?: readonly unknown[]): Promise<Row[]> {
        try {
          return rowsOf<Row>((await connection.query(sql, params as unknown[] | undefined)) as DriverResult);
        } catch (error) {
          throw translateDriverError(error);
        }
      },
    };
  }

  async listen(options: ListenOptions): Promise<Listener> {
    this.#requirePool("listen");
    const listener = new PgListener({
      ...options,
      config: {
        ...this.#config,
        keepAlive: this.#config.keepAlive ?? true,
        keepAliveInitialDelayMillis:
          this.#config.keepAliveInitialDelayMillis ?? PG_CONNECTOR_DEFAULTS.listenKeepAliveInitialDelayMillis,
      },
      delays: this.#delays,
      logger: this.#logger,
      connectError: (error) => this.#connectError(error),
      onClosed: (closed) => this.#listeners.delete(closed),
    });
    this.#listeners.add(listener);
    try {
      await listener.start();
    } catch (error) {
      await listener.close();
      throw error;
    }
    return listener;
  }

  async #checkout(pool: Pool): Promise<Lease> {
    try {
      return new Lease(await pool.connect());
    } catch (error) {
      throw this.#connectError(error);
    }
  }

  #requirePool(action: string): Pool {
    if (!this.#pool) {
      throw new ConnectorError(`cannot ${action}: the PgConnector is not open; call await app.open() first`);
    }
    return this.#pool;
  }

  #connectError(error: unknown): ConnectionError {
    const sqlState = error instanceof DatabaseError ? error.code : undefined;
    return new ConnectionError(
      redact(
        `could not connect to Postgres at ${this.#target}: ${reasonOf(error)}. ` +
          "Check the connection string (DATABASE_URL) and that the server is running and accepts connections",
      ),
      { cause: error, sqlState },
    );
  }

  readonly #onPoolError = (error: Error): void => {
    this.#logger.warn(
      { action: "pool_error", error: redact(reasonOf(error)) },
      "an idle Postgres connection failed; the pool will open a new one",
    );
  };
}

/**
 * One pooled client checked out for a query or a transaction. It decides whether the client
 * may go back to the pool: a server-reported error (a DatabaseError) leaves the connection
 * usable, anything else (a dropped socket, a client-side timeout) may not, so the client is
 * destroyed rather than handed to the next caller.
 */
class Lease {
  readonly #client: PoolClient;
  #suspect = false;
  #released = false;
  readonly queryable: Queryable;

  constructor(client: PoolClient) {
    this.#client = client;
    // A checked-out client has no pool listener; an 'error' event (the server terminating
    // the session between two statements) would otherwise crash the process.
    client.on("error", this.#onError);
    this.queryable = {
      query: <Row>(sql: string, params?: readonly unknown[]) => this.query<Row>(sql, params),
    };
  }

  readonly #onError = (): void => {
    this.#suspect = true;
  };

  async query<Row>(sql: string, params?: readonly unknown[]): Promise<Row[]> {
    return rowsOf<Row>(await this.#run(sql, params));
  }

  async commit(): Promise<void> {
    const result = await this.#run("COMMIT");
    const last = Array.isArray(result) ? result.at(-1) : result;
    // Postgres answers COMMIT of a failed transaction with a ROLLBACK tag, not an error:
    // a caller that swallowed an error inside fn would otherwise believe it committed.
    if (last?.command === "ROLLBACK") {
      throw new ConnectorError(
        "the transaction was rolled back instead of committed because a statement in it failed",
        { sqlState: "25P02" },
      );
    }
  }

  async rollback(): Promise<void> {
    try {
      await this.#run("ROLLBACK");
    } catch {
      this.#suspect = true;
    }
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    // A broken client is destroyed, and the server's goodbye (e.g. FATAL 57P01) can
    // still arrive as an 'error' event while it closes: keep listening in that case.
    if (!this.#suspect) this.#client.off("error", this.#onError);
    this.#client.release(this.#suspect);
  }

  async #run(sql: string, params?: readonly unknown[]) {
    if (this.#released) {
      throw new ConnectorError("this transaction is over; use the connector (or a new transaction) instead");
    }
    try {
      return await this.#client.query(sql, params as unknown[] | undefined);
    } catch (error) {
      if (!(error instanceof DatabaseError)) this.#suspect = true;
      throw translateDriverError(error);
    }
  }
}

function validate(options: PgConnectorOptions, delays: ReconnectDelays): void {
  const problems: string[] = [];
  if (options.pool && (options.connectionString !== undefined || options.poolConfig)) {
    problems.push(
      "pool: pass either a pool you own, or connectionString/poolConfig for one the connector owns",
    );
  }
  // Each reconnect waits on a timer of at most maxDelayMs; Node fires a longer one after 1 ms.
  for (const key of ["initialDelayMs", "maxDelayMs"] as const) {
    const problem = checkDuration(`listenReconnect.${key}`, delays[key]);
    if (problem) problems.push(problem);
  }
  if (delays.initialDelayMs > delays.maxDelayMs) {
    problems.push("listenReconnect.initialDelayMs: must not exceed listenReconnect.maxDelayMs");
  }
  if (problems.length > 0) throw new InvalidOptions("PgConnector", problems);
}

/** host:port (database, user), resolved the way pg resolves them, for error messages. */
function describeTarget(config: ClientConfig): string {
  // Constructing a Client applies the connection string and PG* defaults without connecting.
  const client = new Client(config);
  const where = `${client.host}:${client.port}`;
  return client.database ? `${where} (database "${client.database}", user "${client.user ?? ""}")` : where;
}
