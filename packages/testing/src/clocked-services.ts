import type { App, Logger, WorkerService } from "@proc/core";
import type { Clock, ClockDriven } from "./clock.js";

interface Sleeper {
  wakeAt: number;
  wake: () => void;
}

/**
 * The worker services of a test app that run on its clock instead of timers: the
 * scheduler (the service `@proc/scheduler` registers as "scheduler"). It runs from the
 * test app's creation to its close, as a scheduler in a deployment runs all along, so
 * its catch-up state starts with the test; it sleeps through `ctx.sleep` (a seam of
 * WorkerServiceContext), which only the clock wakes: when it moves past the requested
 * time, or when runUntilIdle pokes it. Nothing happens in the background between.
 *
 * Other services (a user's own) are left to the workers of runUntilIdle, which run
 * every service of the app while they run, as any worker does.
 */
export class ClockedServices implements ClockDriven {
  readonly #app: App;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #controller = new AbortController();
  readonly #sleepers: Sleeper[] = [];
  readonly #runs: Promise<void>[] = [];
  /** Runs that are neither asleep nor finished. */
  #awake = 0;
  #onSettled: Array<() => void> = [];
  #failure: { error: unknown } | null = null;

  constructor(app: App, clock: Clock, logger: Logger) {
    this.#app = app;
    this.#clock = clock;
    this.#logger = logger;
    clock.attach(this);
  }

  /** Start the services; resolves once each has done its first round and sleeps. */
  start(): Promise<void> {
    const app = this.#app;
    const signal = this.#controller.signal;
    for (const service of app.workerServices.filter(isClocked)) {
      this.#awake++;
      const run = service.run({
        app,
        signal,
        logger: this.#logger.child({ service: service.name }),
        // No worker row: the scheduler never uses it, and a row would show in listWorkers().
        workerId: 0,
        workerName: "proc-testing-clock",
        queues: null,
        sleep: (ms) => this.#sleep(ms),
      });
      this.#runs.push(
        run.then(
          () => this.#ended(),
          (error: unknown) => {
            this.#failure ??= { error };
            this.#ended();
          },
        ),
      );
    }
    return this.settled();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((wake) => {
      if (this.#controller.signal.aborted) return wake();
      this.#sleepers.push({ wakeAt: this.#clock.now() + ms, wake });
      this.#awake--;
      this.#settle();
    });
  }

  #ended(): void {
    this.#awake--;
    this.#settle();
  }

  #settle(): void {
    if (this.#awake > 0) return;
    for (const resolve of this.#onSettled.splice(0)) resolve();
  }

  /** Resolves once every run sleeps (or has ended); rejects if one failed. */
  async settled(): Promise<void> {
    if (this.#awake > 0) await new Promise<void>((resolve) => this.#onSettled.push(resolve));
    if (this.#failure)
      throw new Error("the scheduler of the test app failed", { cause: this.#failure.error });
  }

  nextWakeAt(): number | null {
    let next: number | null = null;
    for (const s of this.#sleepers) if (next === null || s.wakeAt < next) next = s.wakeAt;
    return next;
  }

  async wakeUntil(now: number): Promise<void> {
    for (let i = this.#sleepers.length - 1; i >= 0; i--) {
      const sleeper = this.#sleepers[i]!;
      if (sleeper.wakeAt > now) continue;
      this.#sleepers.splice(i, 1);
      this.#awake++;
      sleeper.wake();
    }
    await this.settled();
  }

  /** Wake everything now, without moving the clock (a schedule added meanwhile is seen). */
  poke(): Promise<void> {
    return this.wakeUntil(Number.POSITIVE_INFINITY);
  }

  /** Stop the runs and leave the clock. Idempotent. */
  async stop(): Promise<void> {
    this.#controller.abort();
    for (const sleeper of this.#sleepers.splice(0)) {
      this.#awake++;
      sleeper.wake();
    }
    await Promise.all(this.#runs);
    this.#clock.detach(this);
  }
}

function isClocked(service: WorkerService): boolean {
  return service.name === "scheduler";
}
