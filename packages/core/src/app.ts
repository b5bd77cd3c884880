import { assertSupportedRuntime } from "./runtime.js";
import { Blueprint } from "./blueprint.js";
import type { Connector, Queryable } from "./connector.js";
import { AppNotOpen, DuplicateTask, InvalidOptions, TaskNotFound } from "./errors.js";
import { TypedEmitter } from "./events.js";
import type { Job } from "./job.js";
import { JobManager, type NewJob } from "./job-manager.js";
import type { JsonObject } from "./json.js";
import { type Logger, consoleLogger } from "./logger.js";
import { type SchemaStatus, checkSchema, migrate, schemaStatus } from "./migrate.js";
import { SqlCatalog } from "./sql.js";
import {
  type DeferCallOptions,
  type DeferTarget,
  Deferrer,
  type JobOptions,
  Task,
  type TaskHandler,
  type TaskMiddleware,
  type TaskOptions,
} from "./task.js";
import type { WorkerEventMap } from "./worker-events.js";

export interface AppOptions {
  connector: Connector;
  /** Postgres schema holding proc's tables and functions. @defaultValue "proc" */
  schema?: string;
  /** A pino-compatible logger. @defaultValue consoleLogger({ level: "info" }) */
  logger?: Logger;
}

/** A background loop that every worker of the app runs while it runs (a scheduler, a reaper). */
export interface WorkerService {
  name: string;
  /** Runs until `ctx.signal` aborts, then resolves. A rejection is logged and the service restarted. */
  run(ctx: WorkerServiceContext): Promise<void>;
}

export interface WorkerServiceContext {
  app: App;
  signal: AbortSignal;
  logger: Logger;
  workerId: number;
  workerName: string;
  queues: readonly string[] | null;
  /**
   * Waits `ms` (possibly Infinity: until woken) on the host's clock, resolving early once
   * `signal` aborts, or whenever the host wakes the service: when it moves its clock, or
   * knows of new work. A Worker leaves it unset (a service then sleeps on a timer, waking
   * now and then to look around); a host that drives time itself sets it: `@proc/testing`
   * runs the scheduler this way on its test clock.
   */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * A plugin adds tasks and worker services to an app, and may extend the app's type:
 * what `setup` returns is merged into the app (`app.use(scheduler())` adds `app.periodic`).
 */
export interface Plugin<Extension extends object = object> {
  name: string;
  setup(app: App): Extension;
}

/**
 * The app's events: its own, and every event of every worker running it in this process
 * (WorkerEventMap), so that an observer needs only the app.
 */
export interface AppEvents extends WorkerEventMap {
  "app:open": { app: App };
  "app:close": { app: App };
  "job:deferred": { ids: number[]; task: string; queue: string };
  /** A stalled job was handed back to `todo` for another run (by @proc/contrib-stalled). */
  "job:recovered": { job: Job };
}

/**
 * Runs around every defer of the app (`defer`, `batchDefer`, `configureTask(...).defer`,
 * inside a caller's transaction or not): it may set `headers` on the jobs, and must call
 * `next` once with them. The first one added is the outermost.
 */
export type DeferInterceptor = (
  jobs: NewJob[],
  next: (jobs: NewJob[]) => Promise<number[]>,
) => Promise<number[]>;

/** Fields every log line about a job carries, besides `jobId`, `task` and `attempt`. */
export type LogBindings = (job: Job) => Record<string, unknown> | null | undefined;

export interface ConfigureTaskOptions extends JobOptions {
  /** Defer even if no task of that name is registered in this process (another app runs it). */
  allowUnknown?: boolean;
}

/** The entry point: tasks, plugins, the connector, and the JobManager. */
export class App extends TypedEmitter<AppEvents> implements DeferTarget {
  readonly logger: Logger;
  readonly schema: string;
  #connector: Connector;
  #jobManager: JobManager;
  readonly #sql: SqlCatalog;
  readonly #tasks = new Map<string, Task<never, unknown>>();
  readonly #services: WorkerService[] = [];
  readonly #interceptors: DeferInterceptor[] = [];
  readonly #middleware: TaskMiddleware[] = [];
  readonly #logBindings: LogBindings[] = [];
  readonly #plugins: string[] = [];
  #openCount = 0;
  #opening: Promise<void> | null = null;

  constructor(options: AppOptions) {
    super();
    assertSupportedRuntime();
    const problems: string[] = [];
    if (!options || typeof options !== "object") throw new InvalidOptions("App", ["expected { connector }"]);
    if (!options.connector || typeof options.connector.query !== "function")
      problems.push(
        "connector: required, e.g. new PgConnector({ connectionString }) or new PGliteConnector()",
      );
    if (problems.length) throw new InvalidOptions("App", problems);
    this.#connector = options.connector;
    this.logger = options.logger ?? consoleLogger({ level: "info" });
    this.setEmitterLogger(this.logger);
    this.#sql = new SqlCatalog(options.schema ?? "proc");
    this.schema = this.#sql.schema;
    this.#jobManager = this.#newJobManager(this.#connector);
  }

  /** The one place a JobManager is made: at construction, and when the connector is replaced. */
  #newJobManager(connector: Connector): JobManager {
    return new JobManager(connector, this.#sql, this.logger);
  }

  get connector(): Connector {
    return this.#connector;
  }

  get jobManager(): JobManager {
    return this.#jobManager;
  }

  /**
   * Put the app on another database: the same tasks, plugins and options, another
   * connector (Procrastinate's `replace_connector`). Only while the app is closed, so
   * that nothing runs on the old connector afterwards. Returns the previous connector,
   * which it does not close: swap it back the same way. This is how `@proc/testing` runs
   * the app your module exports on an in-memory database.
   */
  replaceConnector(connector: Connector): Connector {
    if (!connector || typeof connector.query !== "function")
      throw new InvalidOptions("replaceConnector", [
        "connector: expected a Connector, e.g. new PGliteConnector() or new PgConnector({ connectionString })",
      ]);
    if (this.#openCount > 0 || this.#opening)
      throw new InvalidOptions("replaceConnector", [
        "the app is open: close it first (every open() needs its close(), and a running worker holds the app open)",
      ]);
    const previous = this.#connector;
    this.#connector = connector;
    this.#jobManager = this.#newJobManager(connector);
    return previous;
  }

  // ---- lifecycle ------------------------------------------------------------

  get isOpen(): boolean {
    return this.#openCount > 0;
  }

  /**
   * Open the connector. Calls nest: each open() needs a close() (so a worker can open
   * an app the caller already opened without closing it under them).
   */
  async open(): Promise<this> {
    this.#opening ??= this.connector.open();
    try {
      await this.#opening;
    } catch (error) {
      this.#opening = null;
      throw error;
    }
    this.#openCount++;
    if (this.#openCount === 1) this.emit("app:open", { app: this });
    return this;
  }

  async close(): Promise<void> {
    if (this.#openCount === 0) return;
    this.#openCount--;
    if (this.#openCount > 0) return;
    this.#opening = null;
    await this.jobManager.close();
    await this.connector.close();
    this.emit("app:close", { app: this });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Apply pending migrations; returns the versions applied. Idempotent and safe when concurrent. */
  async migrate(): Promise<number[]> {
    this.#assertOpen("migrate");
    return migrate(this.connector, this.#sql, this.logger);
  }

  /** Applied and pending migrations. */
  async schemaStatus(): Promise<SchemaStatus> {
    this.#assertOpen("read the schema status");
    return schemaStatus(this.connector, this.#sql);
  }

  /**
   * Throws SchemaMissing / SchemaOutdated / SchemaTooNew with the command that fixes it.
   * `on`: run the check on these connections instead of the connector's pool.
   */
  async checkSchema(on: Queryable = this.connector): Promise<SchemaStatus> {
    this.#assertOpen("check the schema");
    return checkSchema(on, this.#sql);
  }

  /** The full schema SQL for this app's schema name (what `proc schema sql` prints). */
  schemaSql(): string {
    return this.#sql.schemaSql();
  }

  // ---- tasks ----------------------------------------------------------------

  /** Register a task. Its name must be unique in the app. */
  task<Args = JsonObject, Result = unknown>(
    options: TaskOptions<Args>,
    handler: TaskHandler<Args, Result>,
  ): Task<Args, Result> {
    const task = new Task<Args, Result>(options, handler);
    this.#register(task as unknown as Task<never, unknown>, task.name);
    return task;
  }

  /** Register every task of a blueprint, named "namespace:name" when a namespace is given. */
  addBlueprint(blueprint: Blueprint, options: { namespace?: string } = {}): this {
    if (!(blueprint instanceof Blueprint)) throw new InvalidOptions("addBlueprint", ["expected a Blueprint"]);
    const names = [...blueprint.tasks.keys()].map((n) =>
      options.namespace ? `${options.namespace}:${n}` : n,
    );
    for (const name of names) if (this.#tasks.has(name)) throw new DuplicateTask(name);
    for (const [name, task] of blueprint.tasks)
      this.#register(task, options.namespace ? `${options.namespace}:${name}` : name);
    return this;
  }

  #register(task: Task<never, unknown>, name: string): void {
    if (this.#tasks.has(name)) throw new DuplicateTask(name);
    task.bind(this, name);
    this.#tasks.set(name, task);
  }

  get tasks(): ReadonlyMap<string, Task<never, unknown>> {
    return this.#tasks;
  }

  getTask(name: string): Task<never, unknown> | undefined {
    return this.#tasks.get(name);
  }

  /**
   * A deferrer for a task by name. For a task registered here, the same as
   * `task.configure(options)`; with `allowUnknown`, for a task another process runs.
   */
  configureTask<Args = JsonObject>(name: string, options: ConfigureTaskOptions = {}): Deferrer<Args> {
    const { allowUnknown, ...jobOptions } = options;
    const task = this.#tasks.get(name);
    if (task) return (task as unknown as Task<Args>).configure(jobOptions);
    if (!allowUnknown) throw new TaskNotFound(name, [...this.#tasks.keys()]);
    return new Deferrer<Args>(() => this, name, jobOptions);
  }

  /** @internal Used by deferrers: insert jobs, on the caller's connection when given. */
  async deferJobs(jobs: NewJob[], call?: DeferCallOptions): Promise<number[]> {
    const q = call?.connection ? this.connector.wrapConnection(call.connection) : undefined;
    if (!q) this.#assertOpen("defer a job");
    const insert = async (batch: NewJob[]) => {
      const ids = await this.jobManager.deferJobs(batch, q);
      this.#emitDeferred(ids, batch);
      return ids;
    };
    if (this.#interceptors.length === 0) return insert(jobs);
    return this.#interceptors.reduceRight<(batch: NewJob[]) => Promise<number[]>>(
      (next, interceptor) => (batch) => interceptor(batch, next),
      insert,
    )(jobs);
  }

  #emitDeferred(ids: number[], jobs: NewJob[]): void {
    const first = jobs[0];
    if (first) this.emit("job:deferred", { ids, task: first.task, queue: first.queue });
  }

  // ---- plugins --------------------------------------------------------------

  /** Add a plugin; returns the app, its type extended by what the plugin adds. */
  use<Extension extends object>(plugin: Plugin<Extension>): this & Extension {
    if (!plugin || typeof plugin.setup !== "function")
      throw new InvalidOptions("use", ["expected a plugin { name, setup(app) }"]);
    if (this.#plugins.includes(plugin.name))
      throw new InvalidOptions("use", [
        `plugin ${JSON.stringify(plugin.name)} is already in use on this app`,
      ]);
    this.#plugins.push(plugin.name);
    const extension = plugin.setup(this);
    if (extension) Object.assign(this, extension);
    return this as this & Extension;
  }

  get plugins(): readonly string[] {
    return this.#plugins;
  }

  /** Run `interceptor` around every defer of this app (see DeferInterceptor). */
  interceptDefer(interceptor: DeferInterceptor): void {
    if (typeof interceptor !== "function")
      throw new InvalidOptions("interceptDefer", ["expected a function (jobs, next) => next(jobs)"]);
    this.#interceptors.push(interceptor);
  }

  /**
   * Wrap every run of every task of this app, in every worker: outside the worker's own
   * `middleware` option and the task's. The first one added is the outermost.
   */
  addMiddleware(middleware: TaskMiddleware): void {
    if (typeof middleware !== "function")
      throw new InvalidOptions("addMiddleware", ["expected a function (ctx, next) => next()"]);
    this.#middleware.push(middleware);
  }

  get middleware(): readonly TaskMiddleware[] {
    return this.#middleware;
  }

  /** Add fields to every log line a worker writes about a job (a trace id, a tenant). */
  addLogBindings(bindings: LogBindings): void {
    if (typeof bindings !== "function")
      throw new InvalidOptions("addLogBindings", ["expected a function (job) => ({ ...fields })"]);
    this.#logBindings.push(bindings);
  }

  /** The fields the log bindings give for `job` (empty when there are none). */
  logBindingsFor(job: Job): Record<string, unknown> {
    if (this.#logBindings.length === 0) return {};
    const fields: Record<string, unknown> = {};
    for (const bindings of this.#logBindings) {
      try {
        Object.assign(fields, bindings(job));
      } catch {
        // A log decoration must never stop a worker from logging (or running) a job.
      }
    }
    return fields;
  }

  /** Register a background loop that every worker of this app runs. */
  addWorkerService(service: WorkerService): void {
    this.#services.push(service);
  }

  get workerServices(): readonly WorkerService[] {
    return this.#services;
  }

  #assertOpen(action: string): void {
    if (this.#openCount === 0) throw new AppNotOpen(action);
  }
}
