import { type App, type Connector, InvalidOptions } from "@proc/core";
import { PGliteConnector } from "@proc/pglite-connector";
import { Clock, type TestClock } from "./clock.js";
import { ClockedServices } from "./clocked-services.js";
import { quietLogger } from "./quiet-logger.js";
import { type TemplateOptions, defaultCacheDir, discardDump, migratedDump } from "./template.js";

export interface TestAppOptions {
  /**
   * Freeze the clock at this instant from the start (see {@link TestClock}). Without it
   * the clock follows the real time until you first move it.
   */
  now?: Date | number;
  /**
   * Share the clock of another test app: there is one `Date` per process, so only one
   * clock can move it. @defaultValue a new clock
   */
  clock?: TestClock;
  /**
   * Where the migrated database is cached between processes (test files, runs); used
   * only if no other user can write to it. false keeps it in this process only.
   * @defaultValue `<os.tmpdir()>/proc-testing-<uid>`
   */
  cacheDir?: string | false;
}

/** Your app on an in-memory PGlite database, with a clock. Close it when the test is done. */
export interface TestApp<A extends App = App> {
  /** The app you passed, open, its connector swapped for the test database's. */
  readonly app: A;
  /** The test database: run your own SQL with `connector.query(sql, params)`. */
  readonly connector: Connector;
  /** The clock of the app, Date and the database (see {@link TestClock}). */
  readonly clock: TestClock;
  /**
   * Start over from an empty, freshly migrated database (jobs, workers and periodic
   * ticks gone), in about a second. The clock keeps its time.
   */
  reset(): Promise<void>;
  /**
   * Stop the app's scheduler, close the app and give it back its own connector; give
   * `Date` back once no test app uses the clock. Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** What runUntilIdle needs of the test app of an app. */
export interface TestAppInternals {
  clock: Clock;
  services: ClockedServices;
}

/** Test apps by app, for runUntilIdle(app): the app object is all it is given. */
const testApps = new WeakMap<App, TestAppInternals>();

export function testAppOf(app: App): TestAppInternals | undefined {
  return testApps.get(app);
}

/**
 * Run `app` (the one your module exports, with its tasks and plugins) on an in-memory
 * PGlite database, migrated, and open it. The first call in a process migrates a
 * database (or loads it from the cache directory); later ones start from its dump.
 */
export async function createTestApp<A extends App>(
  app: A,
  options: TestAppOptions = {},
): Promise<TestApp<A>> {
  const problems: string[] = [];
  if (!app || typeof app.replaceConnector !== "function")
    problems.push("app: expected a proc App (new App({ connector }))");
  else if (testApps.has(app)) problems.push("app: it already runs in a test app; close that one first");
  else if (app.isOpen)
    problems.push("app: it is open; createTestApp opens it on the test database (do not open it yourself)");
  const now = options.now instanceof Date ? options.now.getTime() : options.now;
  if (now !== undefined && !Number.isFinite(now))
    problems.push("now: expected a valid Date or a number of ms since the epoch");
  if (options.clock !== undefined && !(options.clock instanceof Clock))
    problems.push("clock: expected the clock of another test app (otherTestApp.clock)");
  else if (options.clock?.frozen && now !== undefined)
    problems.push("now: the shared clock is already frozen; move it with clock.set() instead");
  if (options.cacheDir !== undefined && options.cacheDir !== false && typeof options.cacheDir !== "string")
    problems.push("cacheDir: expected a directory path, or false");
  if (problems.length) throw new InvalidOptions("createTestApp", problems);

  const clock = (options.clock as Clock | undefined) ?? new Clock();
  const release = clock.hold();
  const template: TemplateOptions = { cacheDir: options.cacheDir ?? defaultCacheDir(), logger: app.logger };
  try {
    const started = await start(app, clock, template, now);
    return new RunningTestApp(app, clock, release, template, started);
  } catch (error) {
    release();
    throw error;
  }
}

interface Started {
  connector: PGliteConnector;
  /** The app's own connector, given back on close. */
  previous: Connector;
  services: ClockedServices;
}

/**
 * Swap in a database loaded from the template, open the app, freeze the clock at `now`
 * if given (before the scheduler first looks at it), and start the scheduler on it.
 */
async function start(app: App, clock: Clock, template: TemplateOptions, now?: number): Promise<Started> {
  const { connector, previous } = await openOnTemplate(app, template);
  const services = new ClockedServices(app, clock, quietLogger(app.logger));
  try {
    if (now !== undefined) clock.freeze(now);
    await services.start();
  } catch (error) {
    await services.stop();
    await app.close();
    app.replaceConnector(previous);
    throw error;
  }
  testApps.set(app, { clock, services });
  return { connector, previous, services };
}

async function openOnTemplate(app: App, template: TemplateOptions) {
  for (let attempt = 1; ; attempt++) {
    const dump = await migratedDump(app, template);
    const connector = new PGliteConnector({ loadDataDir: new Blob([dump]) });
    const previous = app.replaceConnector(connector);
    try {
      await app.open();
    } catch (error) {
      app.replaceConnector(previous);
      await connector.close();
      // A cached dump that does not load (made by another PGlite version, a damaged
      // file): make a new one, once.
      if (attempt > 1) throw error;
      await discardDump(app, template);
      continue;
    }
    try {
      await app.checkSchema();
    } catch (error) {
      await app.close();
      app.replaceConnector(previous);
      if (attempt > 1) throw error;
      await discardDump(app, template);
      continue;
    }
    return { connector, previous };
  }
}

class RunningTestApp<A extends App> implements TestApp<A> {
  readonly app: A;
  readonly #clock: Clock;
  readonly #release: () => void;
  readonly #template: TemplateOptions;
  #started: Started;
  #closed: Promise<void> | null = null;

  constructor(app: A, clock: Clock, release: () => void, template: TemplateOptions, started: Started) {
    this.app = app;
    this.#clock = clock;
    this.#release = release;
    this.#template = template;
    this.#started = started;
  }

  get connector(): Connector {
    return this.#started.connector;
  }

  get clock(): TestClock {
    return this.#clock;
  }

  async reset(): Promise<void> {
    if (this.#closed) throw new Error("this test app is closed");
    await this.#stop();
    this.#started = await start(this.app, this.#clock, this.#template);
  }

  close(): Promise<void> {
    this.#closed ??= this.#stop().finally(this.#release);
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #stop(): Promise<void> {
    const { services, previous } = this.#started;
    testApps.delete(this.app);
    await services.stop();
    await this.app.close();
    this.app.replaceConnector(previous);
  }
}
