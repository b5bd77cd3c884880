import { App, type Logger } from "@proc/core";
import type { Env, Values } from "./args.js";
import { CliError } from "./errors.js";
import { importOptional, loadApp } from "./load-app.js";
import type { Printer } from "./output.js";

/**
 * What a command needs from its app:
 * - "tasks": the user's module (the worker runs its tasks);
 * - "database": the module's app if given, else one built from DATABASE_URL;
 * - "none": any app, never opened (`proc schema sql`).
 */
export type AppNeed = "tasks" | "database" | "none";

/** Everything a command runs with. The app is loaded once, opened at most once, closed by main. */
export class Session {
  readonly command: readonly string[];
  readonly values: Values;
  readonly positionals: readonly string[];
  readonly out: Printer;
  readonly err: Printer;
  readonly logger: Logger;
  readonly json: boolean;
  readonly env: Env;
  readonly cwd: string;
  #app: App | null = null;
  #opened = false;
  #fromModule = false;

  constructor(init: {
    command: readonly string[];
    values: Values;
    positionals: readonly string[];
    out: Printer;
    err: Printer;
    logger: Logger;
    env: Env;
    cwd: string;
  }) {
    this.command = init.command;
    this.values = init.values;
    this.positionals = init.positionals;
    this.out = init.out;
    this.err = init.err;
    this.logger = init.logger;
    this.env = init.env;
    this.cwd = init.cwd;
    this.json = init.values.bool("json");
  }

  /** Whether the app came from the user's module (so its tasks are known). */
  get fromModule(): boolean {
    return this.#fromModule;
  }

  async app(need: AppNeed): Promise<App> {
    if (this.#app) return this.#app;
    const module = this.values.string("app");
    if (module) {
      this.#app = await loadApp(module, this.cwd);
      this.#fromModule = true;
      return this.#app;
    }
    if (need === "tasks")
      throw new CliError(
        "this command runs your tasks, so it needs your app: pass --app <module> (or set PROC_APP) naming the file that exports it",
      );
    const url = this.values.string("database-url");
    if (!url && need === "database")
      throw new CliError(
        "no database to use: set DATABASE_URL (or pass --database-url), or pass --app <module> whose app has a connector",
      );
    // @proc/pg-connector is an optional peer: an app on PGlite, always passed with --app, never
    // needs it. With need "none" and no URL the connector is never opened.
    const { PgConnector } = await importOptional<typeof import("@proc/pg-connector")>(
      "@proc/pg-connector",
      "using DATABASE_URL (or --database-url) needs @proc/pg-connector: npm install @proc/pg-connector (or pass --app <module> whose app has its own connector)",
    );
    this.#app = new App({
      connector: new PgConnector({ connectionString: url, logger: this.logger }),
      logger: this.logger,
    });
    return this.#app;
  }

  /**
   * The app, open, its schema checked unless told otherwise: a missing or outdated schema
   * then fails with SchemaMissing/SchemaOutdated ("run `proc schema apply`") instead of a
   * cryptic "relation does not exist".
   */
  async open(need: Exclude<AppNeed, "none">, options: { checkSchema?: boolean } = {}): Promise<App> {
    const app = await this.app(need);
    if (!this.#opened) {
      await app.open();
      this.#opened = true;
    }
    if (options.checkSchema ?? true) await app.checkSchema();
    return app;
  }

  async close(): Promise<void> {
    if (!this.#opened) return;
    this.#opened = false;
    await this.#app?.close();
  }
}
