import { runInNewContext } from "node:vm";
import { type JobError, jsonProblem } from "@proc/core";
import { describe, expect, it } from "vitest";
import { serializeError } from "./errors.js";

/** What jsonb would refuse in a JobError (NUL, lone surrogates, non-finite numbers), or null. */
const storable = (e: JobError) => jsonProblem(e, "error");

describe("serializeError", () => {
  it("keeps name, message, stack and a string or finite number code", () => {
    const error = Object.assign(new TypeError("bad"), { code: "E_BAD" });
    const out = serializeError(error);
    expect(out).toEqual({ name: "TypeError", message: "bad", stack: error.stack, code: "E_BAD" });
    expect(serializeError(Object.assign(new Error("x"), { code: 42 })).code).toBe(42);
  });

  it("drops a code that is neither a string nor a finite number", () => {
    for (const code of [Number.NaN, Number.POSITIVE_INFINITY, 1n, { errno: 1 }, null])
      expect(serializeError(Object.assign(new Error("x"), { code }))).not.toHaveProperty("code");
  });

  it("replaces NUL and lone surrogates in every field by U+FFFD", () => {
    const error = Object.assign(new Error("a\u0000b\ud800"), { code: "C\u0000" });
    error.name = "Bad\udc00Name";
    const out = serializeError(error);
    expect(out.message).toBe("a\uFFFDb\uFFFD");
    expect(out.name).toBe("Bad\uFFFDName");
    expect(out.code).toBe("C\uFFFD");
    expect(out.stack).toContain("a\uFFFDb\uFFFD");
    expect(storable(out)).toBeNull();
    expect(storable(serializeError("thrown \u0000 string \ud800"))).toBeNull();
  });

  it("cuts a huge message and stack at 64 KiB each, saying how much was cut", () => {
    const error = new Error("m".repeat(1_000_000));
    const out = serializeError(error);
    expect(out.message).toBe(`${"m".repeat(65_536)}…(truncated 934464 characters)`);
    expect(out.stack!.length).toBeLessThan(65_600);
    expect(out.stack).toMatch(/…\(truncated \d+ characters\)$/);
    const nonError = serializeError({ big: "x".repeat(1_000_000) });
    expect(nonError.message.length).toBeLessThan(65_600);
    const longName = new Error("x");
    longName.name = "N".repeat(5000);
    expect(serializeError(longName).name).toBe(`${"N".repeat(1024)}…(truncated 3976 characters)`);
  });

  it("recognises an Error from another realm (vm context)", () => {
    const out = serializeError(runInNewContext('new RangeError("far")'));
    expect(out).toMatchObject({ name: "RangeError", message: "far" });
  });

  it("survives an error whose getters throw", () => {
    const error = new Error("x");
    // stack first: V8 builds the stack text lazily, reading name and message.
    for (const key of ["stack", "name", "message", "code"])
      Object.defineProperty(error, key, {
        get() {
          throw new Error(`no ${key}`);
        },
      });
    expect(serializeError(error)).toEqual({ name: "Error", message: "" });
  });

  it("turns non-string fields of an Error into text", () => {
    const error = new Error("x");
    (error as unknown as { message: unknown }).message = { toString: () => "from toString" };
    (error as unknown as { name: unknown }).name = Object.create(null);
    const out = serializeError(error);
    expect(out.message).toBe("from toString");
    expect(out.name).toBe("[object Object]");
  });

  it.each([
    ["a string", "oops", "a non-Error value was thrown: oops"],
    ["null", null, "a non-Error value was thrown: null"],
    ["undefined", undefined, "a non-Error value was thrown: undefined"],
    ["a number", 42, "a non-Error value was thrown: 42"],
    ["a Symbol", Symbol("s"), "a non-Error value was thrown: Symbol(s)"],
    ["a BigInt", 10n, "a non-Error value was thrown: 10n"],
    ["a plain object", { a: 1 }, 'a non-Error value was thrown: {"a":1}'],
    ["an object without prototype", Object.create(null), "a non-Error value was thrown: {}"],
  ])("serializes %s thrown as a NonError", (_label, thrown, message) => {
    expect(serializeError(thrown)).toEqual({ name: "NonError", message });
  });

  it("never throws: cycles, throwing toString and toJSON, a hostile Proxy", () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(serializeError(cycle).message).toBe("a non-Error value was thrown: [object Object]");
    const hostile = {
      toJSON() {
        throw new Error("no JSON");
      },
      toString() {
        throw new Error("no string");
      },
    };
    expect(serializeError(hostile).message).toBe("a non-Error value was thrown: [object Object]");
    const trap = () => {
      throw new Error("trap");
    };
    const proxy = new Proxy({}, { get: trap, getPrototypeOf: trap, ownKeys: trap, has: trap });
    expect(serializeError(proxy)).toEqual({
      name: "NonError",
      message: "a non-Error value was thrown: an unprintable value",
    });
    const errorProxy = new Proxy(new Error("inner"), { get: trap });
    expect(serializeError(errorProxy)).toEqual({ name: "Error", message: "" });
  });
});
