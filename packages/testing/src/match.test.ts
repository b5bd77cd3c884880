import { describe, expect, it } from "vitest";
import { matches } from "./match.js";

describe("matches (partial args patterns)", () => {
  it("matches an object that has each key of the pattern, ignoring the others, at every depth", () => {
    const args = { user: { id: 1, name: "Ann", tags: ["a", "b"] }, lang: "fr" };
    expect(matches(args, {})).toBe(true);
    expect(matches(args, { lang: "fr" })).toBe(true);
    expect(matches(args, { user: { id: 1 } })).toBe(true);
    expect(matches(args, { user: { id: 2 } })).toBe(false);
    expect(matches(args, { missing: "x" })).toBe(false);
    expect(matches(args, { user: "Ann" })).toBe(false);
  });

  it("requires arrays to have the same length, matching element by element (objects partially)", () => {
    const args = {
      items: [
        { sku: "a", qty: 1 },
        { sku: "b", qty: 2 },
      ],
    };
    expect(matches(args, { items: [{ sku: "a" }, { sku: "b" }] })).toBe(true);
    expect(matches(args, { items: [{ sku: "a" }] })).toBe(false);
    expect(matches(args, { items: [{ sku: "b" }, { sku: "a" }] })).toBe(false);
    expect(matches({ items: { 0: "x" } }, { items: ["x"] })).toBe(false);
    expect(matches({ items: ["x"] }, { items: { 0: "x" } })).toBe(false);
  });

  it("compares other values exactly, null included; an undefined pattern asks for an absent key", () => {
    expect(matches({ n: 1 }, { n: 1 })).toBe(true);
    expect(matches({ n: 1 }, { n: "1" })).toBe(false);
    expect(matches({ n: null }, { n: null })).toBe(true);
    expect(matches({ n: null }, { n: {} })).toBe(false);
    expect(matches({ n: 1 }, { m: undefined })).toBe(true);
    expect(matches({ n: 1 }, { n: undefined })).toBe(false);
  });

  it("lets vitest's and jest's asymmetric matchers decide", () => {
    const args = { to: "ann@example.com", attempt: 3, meta: { source: "signup", at: "2030-01-01" } };
    expect(matches(args, { to: expect.stringMatching(/@example\.com$/), attempt: expect.any(Number) })).toBe(
      true,
    );
    expect(matches(args, { meta: expect.objectContaining({ source: "signup" }) })).toBe(true);
    expect(matches(args, { attempt: expect.any(String) })).toBe(false);
  });
});
