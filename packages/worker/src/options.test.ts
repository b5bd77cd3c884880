import { InvalidOptions } from "@proc/core";
import { describe, expect, it } from "vitest";
import { resolveWorkerOptions } from "./options.js";

const problemsOf = (options: Parameters<typeof resolveWorkerOptions>[0]): readonly string[] => {
  try {
    resolveWorkerOptions(options);
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptions);
    return (error as InvalidOptions).problems;
  }
};

describe("resolveWorkerOptions durations", () => {
  const durations = ["pollInterval", "heartbeatInterval", "abortPollInterval", "shutdownTimeout"] as const;

  it.each(durations)("accepts %s up to the longest timer Node.js can set, 2147483647 ms", (key) => {
    expect(resolveWorkerOptions({ [key]: 2_147_483_647 })[key]).toBe(2_147_483_647);
  });

  it.each(durations)("refuses %s = 2 ** 31, which Node would fire after 1 ms", (key) => {
    const problems = problemsOf({ [key]: 2 ** 31 });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${key} is 2147483648 ms, above the limit of 2147483647 ms`));
  });

  it.each(["pollInterval", "heartbeatInterval", "abortPollInterval"] as const)(
    "refuses %s = 0, negative, NaN or Infinity",
    (key) => {
      for (const value of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
        expect(problemsOf({ [key]: value })[0]).toMatch(new RegExp(`^${key} `));
    },
  );

  it("lets shutdownTimeout be 0 or Infinity (the drain then waits without a timer)", () => {
    expect(resolveWorkerOptions({ shutdownTimeout: 0 }).shutdownTimeout).toBe(0);
    expect(resolveWorkerOptions({ shutdownTimeout: Number.POSITIVE_INFINITY }).shutdownTimeout).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(problemsOf({ shutdownTimeout: -1 })[0]).toContain("or Infinity to wait forever (got -1)");
  });

  it("reports every bad duration in one error", () => {
    expect(
      problemsOf({
        pollInterval: 2 ** 31,
        heartbeatInterval: 0,
        abortPollInterval: -1,
        shutdownTimeout: 2 ** 40,
      }),
    ).toHaveLength(4);
  });
});
