import { InvalidOptions } from "@proc/core";
import { describe, expect, it } from "vitest";
import { scheduler } from "./scheduler.js";

describe("scheduler options", () => {
  it("accepts maxSleep up to the longest timer Node.js can set, 2147483647 ms", () => {
    expect(() => scheduler({ maxSleep: 2_147_483_647 })).not.toThrow();
  });

  it("refuses a maxSleep Node would fire after 1 ms, naming the option and the limit", () => {
    expect(() => scheduler({ maxSleep: 2 ** 31 })).toThrow(InvalidOptions);
    expect(() => scheduler({ maxSleep: 2 ** 31 })).toThrow(
      /maxSleep is 2147483648 ms, above the limit of 2147483647 ms/,
    );
  });

  it("lets maxDelay exceed the timer limit: it is compared with the clock, never slept", () => {
    expect(() => scheduler({ maxDelay: 30 * 86_400_000 })).not.toThrow();
  });
});
