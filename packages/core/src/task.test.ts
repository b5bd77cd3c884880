import { describe, expect, it } from "vitest";
import { App } from "./app.js";
import type { Connector } from "./connector.js";
import { InvalidArgs, InvalidOptions } from "./errors.js";

// Registering tasks and configuring deferrers never reaches the connector.
const app = () => new App({ connector: { query: async () => [] } as unknown as Connector });
const noop = async () => {};

describe("task options", () => {
  it("accepts a timeout up to the longest timer Node.js can set", () => {
    expect(app().task({ name: "t", timeout: 2_147_483_647 }, noop).options.timeout).toBe(2_147_483_647);
  });

  it("refuses a timeout Node would fire after 1 ms, naming the option, its unit and the limit", () => {
    const register = () => app().task({ name: "t", timeout: 2 ** 31 }, noop);
    expect(register).toThrow(InvalidOptions);
    expect(register).toThrow(
      /invalid task "t" options:\n {2}- timeout is 2147483648 ms, above the limit of 2147483647 ms/,
    );
  });

  it("refuses a timeout that is not a positive number of ms", () => {
    for (const timeout of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => app().task({ name: "t", timeout }, noop)).toThrow(/timeout/);
  });

  it("checks scheduleAt like a retry decision's at: a Date Postgres and JSON both hold", () => {
    const task = app().task({ name: "t" }, noop);
    expect(() => task.configure({ scheduleAt: new Date(Number.NaN) })).toThrow(InvalidArgs);
    expect(() => task.configure({ scheduleAt: new Date("+010000-01-01T00:00:00Z") })).toThrow(
      "scheduleAt is +010000-01-01T00:00:00.000Z, outside the years 1 to 9999",
    );
    expect(task.configure({ scheduleAt: new Date("2030-01-01T00:00:00Z") }).options.scheduleAt).toEqual(
      new Date("2030-01-01T00:00:00Z"),
    );
  });
});
