import { isAsymmetricMatcher } from "./format.js";

/**
 * A pattern of a task's args: any part may be left out. `expectDeferred(task, { user: { id: 1 } })`
 * matches args `{ user: { id: 1, name: "a" }, lang: "fr" }`.
 */
export type ArgsPattern<T> = T extends readonly (infer U)[]
  ? readonly ArgsPattern<U>[]
  : T extends object
    ? { [K in keyof T]?: ArgsPattern<T[K]> }
    : T;

/**
 * Whether `actual` (JSON, as stored) matches `pattern`:
 * - an object pattern matches an object that has each of its keys with a matching value,
 *   recursively; other keys are ignored (a key whose pattern is `undefined` must be absent);
 * - an array pattern matches an array of the same length, element by element (an
 *   object element partially, as above);
 * - an asymmetric matcher of vitest or jest (`expect.any(Number)`,
 *   `expect.stringMatching(/@/)`, …) decides for itself;
 * - anything else must be equal (`Object.is`).
 */
export function matches(actual: unknown, pattern: unknown): boolean {
  if (isAsymmetricMatcher(pattern)) return pattern.asymmetricMatch(actual);
  if (Array.isArray(pattern))
    return (
      Array.isArray(actual) &&
      actual.length === pattern.length &&
      pattern.every((p, i) => matches(actual[i], p))
    );
  if (typeof pattern === "object" && pattern !== null) {
    if (typeof actual !== "object" || actual === null || Array.isArray(actual)) return false;
    const record = actual as Record<string, unknown>;
    return Object.entries(pattern).every(([key, p]) =>
      p === undefined ? record[key] === undefined : key in record && matches(record[key], p),
    );
  }
  return Object.is(actual, pattern);
}
