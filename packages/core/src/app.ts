import { assertSupportedRuntime } from "./runtime.js";
import { Blueprint } from "./blueprint.js";
import type { Connector, Queryable } from "./connector.js";
import { AppNotOpen, DuplicateTask, InvalidOptions, TaskNotFound } from "./errors.js";
import { TypedEmitter } from "./events.js";
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
  type TaskOptions,
} from "./task.js";

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
}

/**
 * A plugin adds tasks and worker services to an app, and may extend the app's type:
 * what `setup` returns is merged into the app (`app.use(scheduler())` adds `app.periodic`).
 */
export interface Plugin<Extension extends object = object> {
  name: string;
  setup(app: App): Extension;
}

export interface AppEvents {
  "app:open": { app: App };
  "app:close": { app: App };
  "job:deferred": { ids: number[]; task: string; queue: string };
}

export interface ConfigureTaskOptions extends JobOptions {
  /** Defer even if no task of that name is registered in this process (another app runs it). */
  allowUnknown?: boolean;
}

/** The entry point: tasks, plugins, the connector, and the JobManager. */
export class App extends TypedEmitter<AppEvents> implements DeferTarget {
  readonly connector: Connector;
  readonly logger: Logger;
  readonly jobManager: JobManager;
  readonly schema: string;
  readonly #sql: SqlCatalog;
  readonly #tasks = new Map<string, Task<never, unknown>>();
  readonly #services: WorkerService[] = [];
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
    this.connector = options.connector;
    this.logger = options.logger ?? consoleLogger({ level: "info" });
    this.setEmitterLogger(this.logger);
    this.#sql = new SqlCatalog(options.schema ?? "proc");
    this.schema = this.#sql.schema;
    this.jobManager = new JobManager(this.connector, this.#sql, this.logger);
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
    if (call?.connection) {
      const ids = await this.jobManager.deferJobs(jobs, this.connector.wrapConnection(call.connection));
      this.#emitDeferred(ids, jobs);
      return ids;
    }
    this.#assertOpen("defer a job");
    const ids = await this.jobManager.deferJobs(jobs);
    this.#emitDeferred(ids, jobs);
    return ids;
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
