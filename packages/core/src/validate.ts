import { InvalidArgs } from "./errors.js";
import type { JsonObject } from "./json.js";

/**
 * Checks that `value` survives a JSON round trip into jsonb unchanged, so a job never
 * runs with args other than those deferred. Rejects (with the path) functions,
 * symbols, bigints, non-finite numbers, class instances such as Date or Map, cycles,
 * strings containing NUL or lone surrogates (jsonb refuses both). Properties whose
 * value is undefined are allowed: JSON drops them, as callers expect.
 */
export function assertJsonArgs(value: unknown, what: string | number = "args"): asserts value is JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value) || !isPlainObject(value)) {
    throw new InvalidArgs(
      `${rootName(what)} must be a plain JSON object (got ${describeValue(value)}); wrap other values in an object`,
    );
  }
  const problem = jsonProblem(value, what);
  if (problem) throw new InvalidArgs(`${problem}; nothing was deferred`, [problem]);
}

/** A root's name in messages: a name, or the index of one job's args in a batch. */
const rootName = (what: string | number) => (typeof what === "number" ? `args[${what}]` : what);

/**
 * The first reason `value` would not survive a round trip into jsonb, as
 * "path: problem", or null when it is fine. Used for args and for task results.
 *
 * It runs on every job deferred, so the path is kept as a stack of keys and indexes and
 * spelled out only for a problem (building "args.a.b" for every value cost more than the
 * rest of a batch defer), and cycles are found among the ancestors, a short array.
 */
export function jsonProblem(value: unknown, what: string | number = "value"): string | null {
  const path: Array<string | number> = [];
  const ancestors: object[] = [];
  const at = () => {
    let text = rootName(what);
    for (const step of path) text += typeof step === "number" ? `[${step}]` : `.${step}`;
    return text;
  };
  const walk = (v: unknown, inArray: boolean): string | null => {
    switch (typeof v) {
      case "string": {
        const problem = stringProblem(v);
        return problem && `${at()}: ${problem}`;
      }
      case "boolean":
        return null;
      case "number":
        return Number.isFinite(v) ? null : `${at()}: ${v} is not representable in JSON`;
      case "undefined":
        return inArray ? `${at()}: undefined inside an array becomes null in JSON; use null` : null;
      case "object": {
        if (v === null) return null;
        if (ancestors.includes(v)) return `${at()}: circular reference`;
        let problem: string | null = null;
        ancestors.push(v);
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length && !problem; i++) {
            path.push(i);
            problem = walk(v[i], true);
            path.pop();
          }
        } else if (!isPlainObject(v)) {
          problem = `${at()}: ${describeValue(v)} is not plain JSON; convert it (e.g. date.toISOString())`;
        } else {
          for (const key of Object.keys(v)) {
            const keyProblem = stringProblem(key);
            if (keyProblem) {
              problem = `${at()} key ${JSON.stringify(key)}: ${keyProblem}`;
              break;
            }
            path.push(key);
            problem = walk((v as Record<string, unknown>)[key], false);
            path.pop();
            if (problem) break;
          }
        }
        ancestors.pop();
        return problem;
      }
      default:
        return `${at()}: ${typeof v} is not representable in JSON`;
    }
  };
  return walk(value, false);
}

function stringProblem(s: string): string | null {
  if (s.includes("\u0000")) return "contains a NUL character (\\u0000), which Postgres cannot store";
  if (!s.isWellFormed()) return "contains a lone UTF-16 surrogate, which Postgres cannot store";
  return null;
}

export function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** "null", "an array", "an instance of Date", or the typeof: for messages about a bad value. */
export function describeValue(v: unknown): string {
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

/**
 * The longest duration a timer can wait. Node.js fires a timer set for longer after
 * 1 ms (with only a TimeoutOverflowWarning), so `timeout: 2 ** 31` would fail every
 * job at once: every option that drives a timer is refused above this.
 */
export const MAX_DURATION_MS = 2_147_483_647;

export interface DurationRules {
  /** Infinity means "never" (the caller must then not arm a timer). @defaultValue false */
  allowInfinity?: boolean;
  /** 0 is meaningful (e.g. "do not wait"). @defaultValue false */
  allowZero?: boolean;
}

/** A duration option in milliseconds that drives a timer, checked where options enter. */
export function checkDuration(name: string, value: unknown, rules: DurationRules = {}): string | null {
  const { allowInfinity = false, allowZero = false } = rules;
  const orInfinity = allowInfinity ? ", or Infinity to wait forever" : "";
  if (typeof value === "number") {
    if (value === Number.POSITIVE_INFINITY && allowInfinity) return null;
    if (value > MAX_DURATION_MS)
      return (
        `${name} is ${value} ms, above the limit of ${MAX_DURATION_MS} ms (about 24.8 days, the longest ` +
        `timer Node.js can set; a longer one fires after 1 ms); use at most ${MAX_DURATION_MS}${orInfinity}`
      );
    if (allowZero ? value >= 0 : value > 0) return null; // NaN fails both
  }
  const got = typeof value === "number" ? String(value) : describeValue(value);
  return `${name} must be a number of milliseconds ${allowZero ? ">= 0" : "> 0"} and at most ${MAX_DURATION_MS}${orInfinity} (got ${got})`;
}

// Years 1 to 9999: what survives every path a date takes. pg sends a Date parameter as
// text with a four-digit year, an ISO string (batch defer) outside these years
// ("+010000-01-01T…") is refused by Postgres, and a year above 9999 read back from
// jsonb ("10000-01-01T…") is an Invalid Date in JavaScript.
const MIN_DATE_MS = Date.parse("0001-01-01T00:00:00.000Z");
const MAX_DATE_MS = Date.parse("9999-12-31T23:59:59.999Z");

/** A date a job is scheduled at (defer's scheduleAt, a retry decision's at). */
export function checkDate(name: string, value: unknown): string | null {
  if (!(value instanceof Date)) return `${name} must be a Date (got ${describeValue(value)})`;
  const ms = value.getTime();
  if (Number.isNaN(ms)) return `${name} is an invalid Date; build it from a valid timestamp or ISO string`;
  if (ms < MIN_DATE_MS || ms > MAX_DATE_MS)
    return `${name} is ${value.toISOString()}, outside the years 1 to 9999 that Postgres and JSON dates both hold`;
  return null;
}

/**
 * `text` made storable in Postgres text and jsonb, which refuse NUL and lone UTF-16
 * surrogates: each becomes U+FFFD, the replacement character. Why U+FFFD rather than
 * the visible six characters \u0000: one rule for both cases, the length is kept (so
 * positions and truncation counts match the original), and it cannot be mistaken for
 * text that really contains a backslash escape. Text longer than `maxLength` (UTF-16
 * code units) is cut there, never inside a surrogate pair, and ends with
 * "…(truncated N characters)", so one value cannot make a huge row.
 */
export function storableText(text: string, maxLength = Number.POSITIVE_INFINITY): string {
  let out = text;
  if (out.length > maxLength) {
    let cut = maxLength;
    const last = out.charCodeAt(cut - 1);
    if (last >= 0xd800 && last <= 0xdbff) cut--;
    const n = out.length - cut;
    out = `${out.slice(0, cut)}…(truncated ${n} character${n === 1 ? "" : "s"})`;
  }
  return out.replaceAll("\u0000", "\uFFFD").toWellFormed();
}
