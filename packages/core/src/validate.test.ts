import { describe, expect, it } from "vitest";
import { InvalidArgs } from "./errors.js";
import {
  MAX_DURATION_MS,
  assertJsonArgs,
  checkDate,
  checkDuration,
  checkName,
  jsonProblem,
  storableText,
} from "./validate.js";

describe("assertJsonArgs", () => {
  it("accepts plain JSON objects, with odd Unicode and undefined properties", () => {
    expect(() => assertJsonArgs({ a: 1, b: [true, null, "é😀\u2028"], c: { d: undefined } })).not.toThrow();
    expect(() => assertJsonArgs(Object.create(null))).not.toThrow();
  });

  it.each([
    ["a non-object", "x", "must be a plain JSON object"],
    ["an array", [1], "must be a plain JSON object"],
    ["a Date", { when: new Date() }, "args.when: an instance of Date is not plain JSON"],
    ["a function", { f: () => 1 }, "args.f: function is not representable"],
    ["a bigint", { n: 1n }, "args.n: bigint is not representable"],
    ["NaN", { n: Number.NaN }, "args.n: NaN is not representable"],
    ["undefined in an array", { a: [undefined] }, "args.a[0]: undefined inside an array"],
    ["a NUL character", { s: "a\u0000b" }, "args.s: contains a NUL character"],
    ["a lone surrogate", { s: "\ud800" }, "args.s: contains a lone UTF-16 surrogate"],
    ["a NUL in a key", { "a\u0000": 1 }, "contains a NUL character"],
  ])("rejects %s with the path", (_label, value, message) => {
    expect(() => assertJsonArgs(value)).toThrow(InvalidArgs);
    expect(() => assertJsonArgs(value)).toThrow(message);
  });

  it("rejects cycles", () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => assertJsonArgs(a)).toThrow("args.self: circular reference");
  });

  it("allows the same object twice when it is not a cycle", () => {
    const shared = { x: 1 };
    expect(() => assertJsonArgs({ a: shared, b: shared })).not.toThrow();
  });
});

describe("checkName", () => {
  it("rejects empty, too long and non-string names", () => {
    expect(checkName("queue", "", 128)).toBe("queue must not be empty");
    expect(checkName("queue", "x".repeat(129), 128)).toBe("queue is 129 characters long; the limit is 128");
    expect(checkName("queue", 3, 128)).toBe("queue must be a string (got number)");
    expect(checkName("queue", "emails'; DROP TABLE jobs; --", 128)).toBeNull();
  });
});

describe("checkDuration", () => {
  it("accepts up to the longest timer Node.js can set, 2147483647 ms", () => {
    expect(MAX_DURATION_MS).toBe(2 ** 31 - 1);
    expect(checkDuration("timeout", 2_147_483_647)).toBeNull();
    expect(checkDuration("timeout", 0.5)).toBeNull();
    expect(checkDuration("timeout", 2 ** 31)).toBe(
      "timeout is 2147483648 ms, above the limit of 2147483647 ms (about 24.8 days, the longest timer " +
        "Node.js can set; a longer one fires after 1 ms); use at most 2147483647",
    );
  });

  it("refuses zero, negatives, NaN, Infinity and non-numbers unless allowed", () => {
    expect(checkDuration("pollInterval", 0)).toBe(
      "pollInterval must be a number of milliseconds > 0 and at most 2147483647 (got 0)",
    );
    expect(checkDuration("pollInterval", -1)).toContain("(got -1)");
    expect(checkDuration("pollInterval", Number.NaN)).toContain("(got NaN)");
    expect(checkDuration("pollInterval", "5000")).toContain("(got string)");
    expect(checkDuration("pollInterval", Number.POSITIVE_INFINITY)).toContain("above the limit");
  });

  it("allows 0 and Infinity when asked, still refusing a finite value above the limit", () => {
    const rules = { allowZero: true, allowInfinity: true };
    expect(checkDuration("shutdownTimeout", 0, rules)).toBeNull();
    expect(checkDuration("shutdownTimeout", Number.POSITIVE_INFINITY, rules)).toBeNull();
    expect(checkDuration("shutdownTimeout", -1, rules)).toBe(
      "shutdownTimeout must be a number of milliseconds >= 0 and at most 2147483647, or Infinity to wait forever (got -1)",
    );
    expect(checkDuration("shutdownTimeout", 2 ** 31, rules)).toMatch(
      /^shutdownTimeout is 2147483648 ms, above the limit .* or Infinity to wait forever$/,
    );
  });
});

describe("checkDate", () => {
  it("accepts valid dates in the years 1 to 9999", () => {
    expect(checkDate("scheduleAt", new Date("0001-01-01T00:00:00Z"))).toBeNull();
    expect(checkDate("scheduleAt", new Date("9999-12-31T23:59:59.999Z"))).toBeNull();
  });

  it("refuses non-dates, invalid dates, and dates Postgres or JSON cannot round-trip", () => {
    expect(checkDate("scheduleAt", Date.now())).toBe("scheduleAt must be a Date (got number)");
    expect(checkDate("scheduleAt", new Date(Number.NaN))).toContain("scheduleAt is an invalid Date");
    expect(checkDate("scheduleAt", new Date("+010000-01-01T00:00:00Z"))).toBe(
      "scheduleAt is +010000-01-01T00:00:00.000Z, outside the years 1 to 9999 that Postgres and JSON dates both hold",
    );
    expect(checkDate("scheduleAt", new Date(-8.64e15))).toContain("outside the years 1 to 9999");
  });
});

describe("storableText", () => {
  it("replaces NUL and lone surrogates by U+FFFD, keeping the length and valid pairs", () => {
    expect(storableText("a\u0000b")).toBe("a\uFFFDb");
    expect(storableText("\ud800x\udc00")).toBe("\uFFFDx\uFFFD");
    expect(storableText("é😀\u2028")).toBe("é😀\u2028");
    const dirty = "x\u0000\udfff";
    expect(storableText(dirty)).toHaveLength(dirty.length);
    expect(jsonProblem({ s: storableText(dirty) })).toBeNull();
  });

  it("cuts text longer than maxLength and says how much was cut", () => {
    expect(storableText("abcdef", 6)).toBe("abcdef");
    expect(storableText("abcdef", 4)).toBe("abcd…(truncated 2 characters)");
  });

  it("never cuts inside a surrogate pair", () => {
    // "a😀b": the emoji is two code units; cutting at 2 would keep half of it.
    expect(storableText("a😀b", 2)).toBe("a…(truncated 3 characters)");
    expect(storableText("a😀b", 3)).toBe("a😀…(truncated 1 character)");
  });
});
