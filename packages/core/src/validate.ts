import { InvalidArgs } from "./errors.js";
import type { JsonObject } from "./json.js";

/**
 * Checks that `value` survives a JSON round trip into jsonb unchanged, so a job never
 * runs with args other than those deferred. Rejects (with the path) functions,
 * symbols, bigints, non-finite numbers, class instances such as Date or Map, cycles,
 * strings containing NUL or lone surrogates (jsonb refuses both). Properties whose
 * value is undefined are allowed: JSON drops them, as callers expect.
 */
export function assertJsonArgs(value: unknown, what = "args"): asserts value is JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value) || !isPlainObject(value)) {
    throw new InvalidArgs(
      `${what} must be a plain JSON object (got ${describe(value)}); wrap other values in an object`,
    );
  }
  const problem = jsonProblem(value, what);
  if (problem) throw new InvalidArgs(`${problem}; nothing was deferred`, [problem]);
}

/**
 * The first reason `value` would not survive a round trip into jsonb, as
 * "path: problem", or null when it is fine. Used for args and for task results.
 */
export function jsonProblem(value: unknown, what = "value"): string | null {
  const seen = new Set<object>();
  const walk = (v: unknown, path: string, inArray: boolean): string | null => {
    switch (typeof v) {
      case "string":
        return stringProblem(v, path);
      case "boolean":
        return null;
      case "number":
        return Number.isFinite(v) ? null : `${path}: ${v} is not representable in JSON`;
      case "undefined":
        return inArray ? `${path}: undefined inside an array becomes null in JSON; use null` : null;
      case "object": {
        if (v === null) return null;
        if (seen.has(v)) return `${path}: circular reference`;
        seen.add(v);
        let problem: string | null = null;
        if (Array.isArray(v)) {
          for (const [i, item] of v.entries()) {
            problem = walk(item, `${path}[${i}]`, true);
            if (problem) break;
          }
        } else if (!isPlainObject(v)) {
          problem = `${path}: ${describe(v)} is not plain JSON; convert it (e.g. date.toISOString())`;
        } else {
          for (const key of Object.keys(v)) {
            problem =
              stringProblem(key, `${path} key ${JSON.stringify(key)}`) ??
              walk((v as Record<string, unknown>)[key], `${path}.${key}`, false);
            if (problem) break;
          }
        }
        seen.delete(v);
        return problem;
      }
      default:
        return `${path}: ${typeof v} is not representable in JSON`;
    }
  };
  return walk(value, what, false);
}

function stringProblem(s: string, path: string): string | null {
  if (s.includes("\u0000")) return `${path}: contains a NUL character (\\u0000), which Postgres cannot store`;
  if (!s.isWellFormed()) return `${path}: contains a lone UTF-16 surrogate, which Postgres cannot store`;
  return null;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return `an instance of ${(v as object).constructor?.name ?? "an unknown class"}`;
  return typeof v;
}

/** A name (task, queue, lock, queueing lock, periodic id) checked before it reaches SQL. */
export function checkName(kind: string, value: unknown, max: number): string | null {
  if (typeof value !== "string") return `${kind} must be a string (got ${typeof value})`;
  if (value.length === 0) return `${kind} must not be empty`;
  if (value.length > max) return `${kind} is ${value.length} characters long; the limit is ${max}`;
  if (value.includes("\u0000")) return `${kind} must not contain a NUL character`;
  if (!value.isWellFormed()) return `${kind} must not contain a lone UTF-16 surrogate`;
  return null;
}

export const NAME_LIMITS = { task: 128, queue: 128, lock: 256, queueingLock: 256 } as const;

export function checkPriority(value: unknown): string | null {
  if (typeof value !== "number" || !Number.isInteger(value) || value < -2147483648 || value > 2147483647)
    return `priority must be a 32-bit integer (got ${String(value)})`;
  return null;
}
