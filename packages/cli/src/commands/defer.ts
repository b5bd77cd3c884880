import {
  type AlreadyEnqueued,
  type App,
  type JsonObject,
  type RateLimitOption,
  isProcError,
} from "@proc/core";
import { CliError, UsageError } from "../errors.js";
import type { Session } from "../session.js";
import { closest } from "../suggest.js";
import { parseRate } from "./limits.js";

export async function defer(s: Session): Promise<number> {
  const [taskName, argsText = "{}"] = s.positionals as [string, string?];
  const args = parseJobArgs(argsText);
  const v = s.values;
  const at = v.date("at");
  const inSeconds = v.seconds("in");
  if (at && inSeconds !== undefined)
    throw new UsageError("--at and --in are alternatives: give one", ["defer"]);
  const unknown = v.bool("unknown");
  const options = {
    allowUnknown: unknown,
    queue: v.string("queue"),
    lock: v.string("lock"),
    queueingLock: v.string("queueing-lock"),
    onConflict: v.choice("on-conflict", ["error", "ignore", "replace"] as const),
    priority: v.int("priority"),
    scheduleAt: at,
    scheduleIn: inSeconds === undefined ? undefined : { seconds: inSeconds },
    concurrencyKey: v.string("concurrency-key"),
    concurrencyLimit: v.int("concurrency-limit", 1),
    rateLimit: rateLimitOf(v.string("rate-limit"), v.string("rate-key")),
    expireIn: secondsDuration(v.seconds("expire-in", { positive: true })),
    uniqueFor: secondsDuration(v.seconds("unique-for", { positive: true })),
  };

  const app = await s.app("database");
  // Checked before connecting: a typo should not wait on the database.
  if (!unknown && !app.getTask(taskName)) throw unknownTask(taskName, app, s.fromModule);
  await s.open("database");
  let id: number;
  try {
    id = await app.configureTask(taskName, options).defer(args);
  } catch (error) {
    if (!isProcError(error, "ALREADY_ENQUEUED")) throw error;
    const lock = JSON.stringify((error as AlreadyEnqueued).queueingLock);
    if (!v.bool("ignore-already-enqueued"))
      throw new CliError(
        `a job with queueing lock ${lock} is already waiting (todo), so nothing was deferred; pass --ignore-already-enqueued to exit 0 in that case`,
      );
    s.err.line(`note: a job with queueing lock ${lock} is already waiting (todo); nothing was deferred`);
    if (s.json) s.out.json({ id: null, alreadyEnqueued: true, queueingLock: options.queueingLock });
    return 0;
  }
  // The id alone on stdout, so `id=$(proc defer ...)` works.
  const queue = options.queue ?? app.getTask(taskName)?.options.queue ?? "default";
  if (s.json) s.out.json({ id, task: taskName, queue });
  else s.out.line(String(id));
  return 0;
}

function rateLimitOf(rate: string | undefined, key: string | undefined): RateLimitOption | undefined {
  if (rate === undefined) {
    if (key !== undefined) throw new UsageError("--rate-key needs --rate-limit N/window", ["defer"]);
    return undefined;
  }
  return { ...parseRate(rate, "rate-limit", "defer"), ...(key === undefined ? {} : { key }) };
}

const secondsDuration = (seconds: number | undefined) => (seconds === undefined ? undefined : { seconds });

function parseJobArgs(text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CliError(
      `json-args is not valid JSON (${(error as Error).message}); pass an object such as '{"to": "a@b.c"}', quoted for your shell`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
    throw new CliError(`json-args must be a JSON object such as '{"to": "a@b.c"}', not ${kind}`);
  }
  return value as JsonObject;
}

function unknownTask(name: string, app: App, fromModule: boolean): CliError {
  const fix = "pass --unknown to defer it by name anyway (for a task another app runs)";
  if (!fromModule)
    return new CliError(
      `no task named ${JSON.stringify(name)} is known: no --app was given, so no task is registered; pass --app <module>, or ${fix}`,
    );
  const names = [...app.tasks.keys()];
  const near = closest(name, names);
  const hint = near.length
    ? `did you mean ${near.map((n) => JSON.stringify(n)).join(" or ")}?`
    : names.length
      ? `registered tasks: ${names.slice(0, 10).join(", ")}${names.length > 10 ? ", …" : ""}.`
      : "the app registers no task.";
  return new CliError(`no task named ${JSON.stringify(name)} is registered on the app; ${hint} Or ${fix}`);
}
