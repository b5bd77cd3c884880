import { describe, expect, it } from "vitest";
import { InvalidArgs } from "./errors.js";
import { assertJsonArgs, checkName } from "./validate.js";

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
