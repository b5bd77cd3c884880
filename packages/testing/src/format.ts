import type { Job } from "@proc/core";

/** `job 12 (send_email {"to":"a@b.c"})`: how messages name a job. */
export function describeJob(job: Pick<Job, "id" | "task" | "args">): string {
  return `job ${job.id} (${job.task} ${preview(job.args)})`;
}

/** JSON, cut to a readable length. */
export function preview(value: unknown, max = 120): string {
  let text: string;
  try {
    text =
      JSON.stringify(value, (_key, v: unknown) => (isAsymmetricMatcher(v) ? describeMatcher(v) : v)) ??
      "undefined";
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** vitest's and jest's `expect.any(String)`, `expect.stringContaining(…)`, …: they match themselves. */
export interface AsymmetricMatcher {
  asymmetricMatch(other: unknown): boolean;
  toString?(): string;
  toAsymmetricMatcher?(): string;
}

export function isAsymmetricMatcher(value: unknown): value is AsymmetricMatcher {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as AsymmetricMatcher).asymmetricMatch === "function"
  );
}

function describeMatcher(matcher: AsymmetricMatcher): string {
  return matcher.toAsymmetricMatcher?.() ?? matcher.toString?.() ?? "<matcher>";
}
