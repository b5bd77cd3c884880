import { type Duration, durationMs } from "@proc/core";

/**
 * Something that runs on a clock's time rather than on timers: the scheduler of a test
 * app (see clocked-services.ts). The clock wakes it when its time comes.
 */
export interface ClockDriven {
  /** The earliest time (ms) it asked to be woken at, or null when nothing sleeps. */
  nextWakeAt(): number | null;
  /** Wake what sleeps until `now` or earlier; resolves once all of it sleeps again. */
  wakeUntil(now: number): Promise<void>;
}

/** Marks the Date a clock installed, so that a second clock can tell it is not alone. */
const OWNER = Symbol.for("proc.testing.clock");

/**
 * The time of a test app, shared by your code, proc's code and the database.
 *
 * Until you move it, it is the real time. The first `set()` or `advance()` (or the
 * `now` option of createTestApp) freezes it: from then on `Date.now()` and `new Date()`
 * return the clock's time everywhere in the process, and only `set()`/`advance()` move
 * it. PGlite runs in this process and reads its time from `Date.now()`, so the database's
 * `now()` (what makes a scheduled job due) agrees. Timers (`setTimeout`) stay real.
 *
 * Moving the clock lets the test app's scheduler defer the periodic jobs whose ticks it
 * passes, each at its own time, as a scheduler running all along would have. Jobs run
 * only in `runUntilIdle()`. Closing the test app gives Date back.
 */
export interface TestClock {
  /** The clock's time, in ms since the epoch. */
  now(): number;
  /** Whether the clock is frozen (moved at least once): Date then returns its time. */
  readonly frozen: boolean;
  /**
   * Move the clock forward by `by` (ms, or `{ minutes: 10 }`), waking the scheduler at
   * every tick on the way. Resolves once the periodic jobs of those ticks are deferred.
   */
  advance(by: Duration): Promise<void>;
  /** Move the clock forward to `to`, as advance() does. The clock never goes back. */
  set(to: Date | number): Promise<void>;
}

/** The clock of one or more test apps (they share it through createTestApp's `clock` option). */
export class Clock implements TestClock {
  /** The frozen time in ms, or null while the clock follows the real time. */
  #frozenAt: number | null = null;
  /** What `Date` was before this clock installed its own, and its own. */
  #realDate: DateConstructor | null = null;
  #fakeDate: DateConstructor | null = null;
  readonly #driven = new Set<ClockDriven>();
  /** Test apps using the clock: the last to let go gives Date back. */
  #holders = 0;
  /** Moves run one after the other. */
  #moving: Promise<void> = Promise.resolve();

  now(): number {
    return this.#frozenAt ?? Date.now();
  }

  get frozen(): boolean {
    return this.#frozenAt !== null;
  }

  advance(by: Duration): Promise<void> {
    const ms =
      typeof by === "number" || (typeof by === "object" && by !== null) ? durationMs(by) : Number.NaN;
    if (!(Number.isFinite(ms) && ms >= 0))
      return Promise.reject(
        new RangeError(`clock.advance: expected a duration >= 0 (ms or { minutes: 10 }), got ${String(by)}`),
      );
    return this.#move(() => this.now() + ms);
  }

  set(to: Date | number): Promise<void> {
    const at = to instanceof Date ? to.getTime() : to;
    if (!Number.isFinite(at))
      return Promise.reject(
        new RangeError(`clock.set: expected a Date or ms since the epoch, got ${String(to)}`),
      );
    return this.#move(() => {
      if (at < this.now())
        throw new RangeError(
          `clock.set(${iso(at)}) is before the clock's time (${iso(this.now())}): the test clock only moves forward`,
        );
      return at;
    });
  }

  #move(target: () => number): Promise<void> {
    const move = this.#moving.then(async () => {
      if (this.#holders === 0)
        throw new Error("this clock's test app is closed: the clock can no longer move");
      const to = target();
      this.freeze(this.now());
      // A look at the current time first: a schedule added since the last one starts here.
      await this.#wakeUntil(Number.POSITIVE_INFINITY);
      // Then step through every wake-up on the way, in order, each at its own time.
      for (;;) {
        const next = this.#nextWakeAt();
        if (next === null || next > to) break;
        this.#frozenAt = Math.max(this.#frozenAt!, next);
        await this.#wakeUntil(this.#frozenAt);
      }
      this.#frozenAt = to;
      await this.#wakeUntil(to);
    });
    this.#moving = move.catch(() => {});
    return move;
  }

  #nextWakeAt(): number | null {
    let next: number | null = null;
    for (const d of this.#driven) {
      const at = d.nextWakeAt();
      if (at !== null && (next === null || at < next)) next = at;
    }
    return next;
  }

  async #wakeUntil(now: number): Promise<void> {
    await Promise.all([...this.#driven].map((d) => d.wakeUntil(now)));
  }

  /** Freeze the clock at `at` (if it is not frozen yet), installing its Date. */
  freeze(at: number): void {
    if (this.#frozenAt !== null) return;
    const current = globalThis.Date;
    const owner = (current as unknown as Record<symbol, unknown>)[OWNER];
    if (owner && owner !== this)
      throw new Error(
        "another @proc/testing clock already controls Date in this process: close its test app first, " +
          "or share its clock with createTestApp(app, { clock: other.clock })",
      );
    this.#frozenAt = at;
    this.#realDate = current;
    this.#fakeDate = this.#makeDate(current);
    globalThis.Date = this.#fakeDate;
  }

  /**
   * The Date the clock installs: the real one, but for the current time. A proxy rather
   * than a subclass, so that `instanceof Date`, `Date.prototype` and subclasses of Date
   * keep working; once the clock is restored it passes everything through, should
   * anyone still hold it (a fake-timers library restoring "its" original, say).
   */
  #makeDate(real: DateConstructor): DateConstructor {
    const clock = this;
    const now = () => clock.#frozenAt ?? real.now();
    return new Proxy(real, {
      construct(target, args, newTarget) {
        const frozen = clock.#frozenAt;
        return Reflect.construct(target, args.length === 0 && frozen !== null ? [frozen] : args, newTarget);
      },
      apply(target) {
        // Date() called as a function: the current time as a string.
        return new target(now()).toString();
      },
      get(target, key) {
        if (key === "now") return now;
        if (key === OWNER) return clock.#frozenAt === null ? undefined : clock;
        return Reflect.get(target, key);
      },
    });
  }

  /** Let `driven` run on this clock's time: moves wake it. */
  attach(driven: ClockDriven): void {
    this.#driven.add(driven);
  }

  detach(driven: ClockDriven): void {
    this.#driven.delete(driven);
  }

  /**
   * Use the clock (a test app does, from its creation to its close). The returned
   * function lets go; the last one to let go gives Date back, and the clock follows the
   * real time again.
   */
  hold(): () => void {
    this.#holders++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.#holders > 0 || this.#frozenAt === null) return;
      this.#frozenAt = null;
      if (globalThis.Date === this.#fakeDate) globalThis.Date = this.#realDate!;
      this.#fakeDate = null;
      this.#realDate = null;
    };
  }
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}
