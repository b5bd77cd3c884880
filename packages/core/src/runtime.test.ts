import { afterEach, describe, expect, it } from "vitest";
import { App } from "./app.js";
import type { Connector } from "./connector.js";
import { UnsupportedRuntime, isProcError } from "./errors.js";

const connector = { query: async () => [] } as unknown as Connector;

describe("runtime check", () => {
  const original = String.prototype.isWellFormed;
  afterEach(() => {
    String.prototype.isWellFormed = original;
  });

  it("lets an App be made on this Node", () => {
    expect(() => new App({ connector })).not.toThrow();
  });

  it("refuses to make an App on a runtime without String.prototype.isWellFormed, saying what to do", () => {
    // What Node 18 looks like to proc.
    (String.prototype as { isWellFormed?: unknown }).isWellFormed = undefined;
    let caught: unknown;
    try {
      new App({ connector });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UnsupportedRuntime);
    expect(isProcError(caught, "UNSUPPORTED_RUNTIME")).toBe(true);
    expect((caught as UnsupportedRuntime).missing).toEqual(["String.prototype.isWellFormed"]);
    expect((caught as Error).message).toMatch(/needs Node\.js 20\.4 or newer; this runtime \(v\d+/);
    expect((caught as Error).message).toMatch(/Upgrade Node\.js$/);
  });
});
