import { App } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { afterEach, describe, expect, it } from "vitest";
import { type TestApp, createTestApp } from "../src/index.js";
import { app } from "./fixtures/app.js";
import { cacheDir } from "./helpers.js";

/** Date as it was before any test clock. */
const RealDate = Date;
/** A second app of the process (two services of one repository, say). */
const other = new App({ connector: new PgConnector({ connectionString: process.env.DATABASE_URL }) });

const open: TestApp[] = [];
async function testApp(target: App, options: Parameters<typeof createTestApp>[1] = {}) {
  const t = await createTestApp(target, { cacheDir, ...options });
  open.push(t);
  return t;
}
afterEach(async () => {
  for (const t of open.splice(0).reverse()) await t.close();
  expect(Date).toBe(RealDate);
});

describe("the test clock", () => {
  it("is the real time until moved; the first move freezes Date at the clock's time", async () => {
    const t = await testApp(app);
    expect(t.clock.frozen).toBe(false);
    expect(Date).toBe(RealDate);

    const before = RealDate.now();
    await t.clock.advance({ seconds: 90 });

    expect(t.clock.frozen).toBe(true);
    expect(t.clock.now()).toBeGreaterThanOrEqual(before + 90_000);
    expect(Date.now()).toBe(t.clock.now());
    // biome-ignore lint/complexity/useDateNow: new Date() is what is tested here.
    expect(new Date().getTime()).toBe(t.clock.now());
    await new Promise((resolve) => setTimeout(resolve, 20)); // timers stay real; Date stands still
    expect(Date.now()).toBe(t.clock.now());
  });

  it("fakes the current time only: dates, instanceof, subclasses and Date's functions work", async () => {
    const made = new RealDate(0);
    const t = await testApp(app, { now: Date.UTC(2031, 5, 15, 12) });

    expect(new Date().toISOString()).toBe("2031-06-15T12:00:00.000Z");
    expect(new Date(0).getTime()).toBe(0);
    expect(new Date("2020-01-01T00:00:00Z").getUTCFullYear()).toBe(2020);
    expect(new Date(2020, 0, 1).getFullYear()).toBe(2020);
    expect(made instanceof Date).toBe(true);
    expect(new Date() instanceof RealDate).toBe(true);
    expect(Object.prototype.toString.call(new Date())).toBe("[object Date]");
    class Stamp extends Date {
      label() {
        return `at ${this.toISOString()}`;
      }
    }
    expect(new Stamp().label()).toBe("at 2031-06-15T12:00:00.000Z");
    expect(Date()).toBe(new RealDate(Date.UTC(2031, 5, 15, 12)).toString());
    expect(Date.UTC(2000, 0, 1)).toBe(946684800000);
    expect(Date.parse("2000-01-01T00:00:00Z")).toBe(946684800000);
    expect(t.clock.frozen).toBe(true);
  });

  it("only moves forward, by a duration", async () => {
    const t = await testApp(app, { now: new Date("2031-01-01T00:00:00Z") });
    await expect(t.clock.set(new Date("2030-12-31T23:59:59Z"))).rejects.toThrow(
      "clock.set(2030-12-31T23:59:59.000Z) is before the clock's time (2031-01-01T00:00:00.000Z): the test clock only moves forward",
    );
    await expect(t.clock.advance(-1)).rejects.toThrow(RangeError);
    await expect(t.clock.advance({ minutes: Number.NaN })).rejects.toThrow(/expected a duration >= 0/);
    await expect(t.clock.set(new Date("nope"))).rejects.toThrow(/expected a Date or ms since the epoch/);
    await t.clock.set(new Date("2031-01-01T00:00:00Z")); // where it is: fine
    await t.clock.advance({ days: 1, hours: 2 });
    expect(new Date().toISOString()).toBe("2031-01-02T02:00:00.000Z");
  });

  it("gives Date back on close, and cannot move afterwards", async () => {
    const t = await testApp(app, { now: new Date("2031-01-01T00:00:00Z") });
    expect(Date).not.toBe(RealDate);
    await t.close();
    expect(Date).toBe(RealDate);
    expect(t.clock.frozen).toBe(false);
    await expect(t.clock.advance(1000)).rejects.toThrow(/test app is closed/);
  });

  it("is one per process: a second clock is refused while one holds Date; a shared one works", async () => {
    const first = await testApp(app, { now: new Date("2031-01-01T00:00:00Z") });
    await expect(createTestApp(other, { cacheDir, now: new Date("2040-01-01T00:00:00Z") })).rejects.toThrow(
      /another @proc\/testing clock already controls Date in this process/,
    );
    expect(other.isOpen).toBe(false);

    await expect(createTestApp(other, { clock: first.clock, now: Date.UTC(2040, 0) })).rejects.toThrow(
      "now: the shared clock is already frozen; move it with clock.set() instead",
    );
    const second = await testApp(other, { clock: first.clock });
    expect(second.clock).toBe(first.clock);
    await second.clock.advance({ hours: 1 });
    const [row] = await second.connector.query<{ now: Date }>("SELECT now() AS now");
    expect(new Date(row!.now).toISOString()).toBe("2031-01-01T01:00:00.000Z");

    // The first app closes: the second one still holds the clock, and Date.
    await first.close();
    expect(new Date().toISOString()).toBe("2031-01-01T01:00:00.000Z");
    await second.close();
    expect(Date).toBe(RealDate);
  });
});
