import type { Session } from "../session.js";
import { UsageError } from "../errors.js";

const RATE_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A rate as the CLI takes it: "5/1s" (5 starts per second), "100/1m", "10/500ms". The
 * window needs its unit: "5/1" could be a second or a millisecond.
 */
export function parseRate(text: string, option: string, command: string): { max: number; per: number } {
  const match = /^(\d+)\/(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  const max = match ? Number(match[1]) : Number.NaN;
  const per = match ? Math.round(Number(match[2]) * RATE_UNITS[match[3]!]!) : Number.NaN;
  if (!(max >= 1 && max <= 1_000_000 && per >= 1 && per <= 2_147_483_647))
    throw new UsageError(
      `--${option} must be starts/window with a unit, such as 5/1s, 100/1m or 10/500ms (1 to 1000000 starts, a window up to about 24 days); got ${JSON.stringify(text)}`,
      [command],
    );
  return { max, per };
}

export async function queuesLimit(s: Session): Promise<number> {
  const [queue] = s.positionals as [string];
  const v = s.values;
  const clear = v.bool("clear");
  const maxRunning = v.int("max-running", 1);
  const rateText = v.string("rate");
  if (clear && (maxRunning !== undefined || rateText !== undefined))
    throw new UsageError("--clear removes every limit of the queue: give it alone", ["queues", "limit"]);
  if (!clear && maxRunning === undefined && rateText === undefined)
    throw new UsageError("give --max-running N, --rate N/window, or --clear", ["queues", "limit"]);
  const rateLimit = rateText === undefined ? null : parseRate(rateText, "rate", "queues limit");
  const app = await s.open("database");
  await app.jobManager.setQueueLimits(queue, clear ? {} : { maxRunning: maxRunning ?? null, rateLimit });
  if (s.json) s.out.json({ queue, maxRunning: maxRunning ?? null, rateLimit });
  else if (clear) s.out.line(`queue ${queue}: no limits`);
  else s.out.line(`queue ${queue}: ${describeLimits(maxRunning ?? null, rateLimit)}`);
  return 0;
}

export async function limits(s: Session): Promise<number> {
  const app = await s.open("database");
  const result = await app.jobManager.listLimits({ limit: s.values.int("limit", 1) ?? 100 });
  if (s.json) {
    s.out.json(result);
    return 0;
  }
  const empty = (text: string) => s.out.line(s.out.paint(text, "dim"));
  s.out.line("QUEUES");
  if (result.queues.length === 0) empty("no queue has limits");
  else
    s.out.table(
      [
        { header: "QUEUE" },
        { header: "LIMITS" },
        { header: "RUNNING", align: "right" },
        { header: "WAITING", align: "right" },
        { header: "STARTS IN WINDOW", align: "right" },
      ],
      result.queues.map((q) => [
        q.queue,
        describeLimits(q.maxRunning, q.rateLimit),
        String(q.running),
        String(q.waiting),
        q.windowStarts === null ? "" : `${q.windowStarts}/${q.rateLimit!.max}`,
      ]),
    );
  s.out.line("");
  s.out.line("CONCURRENCY KEYS (with jobs waiting or running)");
  if (result.concurrencyKeys.length === 0) empty("none");
  else
    s.out.table(
      [
        { header: "KEY" },
        { header: "RUNNING", align: "right" },
        { header: "LIMIT", align: "right" },
        { header: "WAITING", align: "right" },
      ],
      result.concurrencyKeys.map((k) => [k.key, String(k.running), String(k.limit), String(k.waiting)]),
    );
  s.out.line("");
  s.out.line("RATE KEYS");
  if (result.rateKeys.length === 0) empty("none");
  else
    s.out.table(
      [
        { header: "KEY" },
        { header: "RATE" },
        { header: "STARTS IN WINDOW", align: "right" },
        { header: "FULL UNTIL" },
      ],
      result.rateKeys.map((k) => [
        k.key,
        `${k.max}/${k.per}ms`,
        String(k.windowStarts),
        k.openAt && k.openAt.getTime() > Date.now() ? k.openAt.toISOString() : "",
      ]),
    );
  return 0;
}

function describeLimits(maxRunning: number | null, rate: { max: number; per: number } | null): string {
  const parts: string[] = [];
  if (maxRunning !== null) parts.push(`at most ${maxRunning} running`);
  if (rate) parts.push(`at most ${rate.max} starts per ${rate.per} ms`);
  return parts.join(", ");
}
