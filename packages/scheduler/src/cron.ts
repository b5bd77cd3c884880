import { InvalidOptions } from "@proc/core";
import { CronExpressionParser } from "cron-parser";

/**
 * A parsed cron expression in a time zone. Ticks are Unix seconds: the unit the
 * database dedups on and the `timestamp` a periodic task receives.
 */
export interface CronSchedule {
  readonly expression: string;
  readonly timezone: string;
  /** The first tick strictly after `unixSeconds`. */
  nextAfter(unixSeconds: number): number;
}

export interface ParseCronOptions {
  /** Names the caller in the error ("invalid <where> options"). @defaultValue "periodic" */
  where?: string;
  /**
   * Seed of the `H` (hash) fields, e.g. "H 3 * * *" (once a day at 3, at a minute
   * picked from the seed). @defaultValue the expression
   */
  hashSeed?: string;
}

/**
 * Parse a cron expression: 5 fields (minute first), 6 fields (seconds first), or a
 * cron-parser alias such as `@daily`. Throws InvalidOptions quoting the expression.
 */
export function parseCron(
  expression: string,
  timezone = "UTC",
  options: ParseCronOptions = {},
): CronSchedule {
  const problems = cronProblems(expression, timezone);
  if (problems.length) throw new InvalidOptions(options.where ?? "periodic", problems);
  // cron-parser draws `H` fields from a random seed unless given one: every process
  // (and every call below) must agree on the ticks for the database to dedup them.
  const hashSeed = options.hashSeed ?? expression;
  return {
    expression,
    timezone,
    nextAfter(unixSeconds) {
      // A fresh iterator per call: cron-parser's iterators are stateful, and the
      // scheduler asks about arbitrary points (catch-up, clock jumps).
      const iterator = CronExpressionParser.parse(expression, {
        tz: timezone,
        hashSeed,
        currentDate: new Date(unixSeconds * 1000),
      });
      return Math.floor(iterator.next().getTime() / 1000);
    },
  };
}

/** Everything wrong with (expression, timezone), each naming the option; empty when valid. */
export function cronProblems(expression: unknown, timezone: unknown): string[] {
  const problems: string[] = [];
  if (typeof timezone !== "string" || !isTimeZone(timezone)) {
    problems.push(
      `timezone: ${JSON.stringify(timezone)} is not an IANA time zone (e.g. "UTC", "Europe/Paris")`,
    );
  }
  if (typeof expression !== "string") {
    problems.push(`cron: expected a string such as "*/5 * * * *", got ${typeof expression}`);
    return problems;
  }
  const quoted = JSON.stringify(expression);
  const fields = expression.trim().split(/\s+/).length;
  // cron-parser silently pads shorter expressions ("5" would mean "at second 0 of
  // minute 5 of every hour"), which is never what a 1- to 4-field typo meant.
  if (!expression.trim().startsWith("@") && fields !== 5 && fields !== 6) {
    problems.push(
      `cron: ${quoted} has ${fields} field(s); expected 5 (minute hour day-of-month month day-of-week) ` +
        "or 6 (with seconds first)",
    );
    return problems;
  }
  if (problems.length) return problems;
  try {
    // Computing one tick also catches expressions that parse but never match (30 February).
    CronExpressionParser.parse(expression, { tz: timezone as string, hashSeed: expression }).next();
  } catch (error) {
    problems.push(`cron: ${quoted} is not a valid cron expression: ${(error as Error).message}`);
  }
  return problems;
}

function isTimeZone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}
