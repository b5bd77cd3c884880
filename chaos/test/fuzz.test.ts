/**
 * Bad input, property-based: every input is either accepted and round-trips exactly
 * (defer → getJob, and defer → the task run by a worker), or rejected with a typed
 * error and nothing half-written. The worker never crashes. PGlite and real Postgres.
 */
import { type App, isProcError, type JsonObject } from "@proc/core";
import { cronProblems, parseCron, periodic, scheduler } from "@proc/scheduler";
import { backends, createTestApp, type TestApp } from "@proc/fixtures";
import { Worker } from "@proc/worker";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const NUM_RUNS = Number(process.env.CHAOS_FUZZ_RUNS ?? 60);

/** SQL-ish fragments mixed into names, to prove that every value reaches SQL as a parameter. */
const SQLISH = [
  "'",
  '"',
  ";",
  "--",
  "/*",
  "\\",
  "$1",
  "%s",
  "'; DROP TABLE proc.jobs; --",
  '"); DELETE FROM proc.jobs; --',
  "' OR '1'='1",
  "proc.jobs",
  "\u0000",
  "\ud800",
  "🦄",
  "ǅ\u200d\u0301",
  " ",
];
const oddString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc
    .array(fc.oneof(fc.constantFrom(...SQLISH), fc.string({ maxLength: 5 })), { maxLength: 6 })
    .map((parts) => parts.join("")),
);
const oddJson = fc.jsonValue({ maxDepth: 6, stringUnit: "binary" });
const oddArgs = fc.oneof(
  fc.dictionary(oddString, oddJson, { maxKeys: 6 }),
  fc.record({ text: oddString, deep: oddJson, n: fc.double() }),
  // Not JSON at all: must be refused at defer time.
  fc.constantFrom<unknown>(
    { f: () => 1 },
    { b: 10n },
    { d: new Date(0) },
    { u: undefined, nan: Number.NaN },
    { inf: Number.POSITIVE_INFINITY },
    [1, 2],
    null,
    "string",
  ),
);

/** What jsonb gives back for a JSON value (-0 is 0, key order is jsonb's). */
const normalized = (value: unknown) => JSON.parse(JSON.stringify(value));

async function countJobs(app: App): Promise<number> {
  const [row] = await app.connector.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${app.schema}.jobs`);
  return row!.n;
}

describe.each(backends())("bad input (%s)", (backend) => {
  let t: TestApp;
  let app: App;
  const seen = new Map<number, unknown>();

  beforeAll(async () => {
    t = await createTestApp(backend);
    app = t.app.use(scheduler());
    app.task({ name: "echo" }, async (args: JsonObject, ctx) => {
      seen.set(ctx.job.id, args);
      return args;
    });
  });
  afterAll(async () => {
    await t?.dispose();
  });

  /** Run every ready job with a one-shot worker; it must not crash. */
  async function drain(queues?: string[]): Promise<void> {
    const worker = new Worker(app, { wait: false, handleSignals: false, concurrency: 4, queues });
    await worker.run();
  }

  it("task args: accepted and round-tripped exactly, or rejected (InvalidArgs) with nothing written", async () => {
    const accepted: Array<[number, unknown]> = [];
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(oddArgs, async (args) => {
        const before = await countJobs(app);
        let id: number;
        try {
          id = await app.configureTask("echo").defer(args as JsonObject);
        } catch (error) {
          expect(isProcError(error), String(error)).toBe(true);
          expect(await countJobs(app)).toBe(before);
          rejected++;
          return;
        }
        expect(typeof id).toBe("number");
        expect((await app.jobManager.getJob(id))!.args).toEqual(normalized(args));
        accepted.push([id, args]);
      }),
      { numRuns: NUM_RUNS },
    );
    await drain();
    for (const [id, args] of accepted) {
      expect(seen.get(id)).toEqual(normalized(args));
      expect((await app.jobManager.getJob(id))!.status).toBe("succeeded");
    }
    console.log(
      `fuzz args (${backend}): ${accepted.length} accepted and round-tripped, ${rejected} rejected`,
    );
  });

  it("large and deep args (>1 MB, deep nesting, odd Unicode) round-trip through defer and a worker", async () => {
    const big = "aé🦄\u200b\u202e𝕏".repeat(200_000); // ~2.6 MB of UTF-8
    let deep: unknown = { leaf: "end" };
    for (let i = 0; i < 500; i++) deep = i % 2 ? { d: deep } : [deep];
    const cases: unknown[] = [
      { big },
      { deep },
      { many: Array.from({ length: 50_000 }, (_, i) => ({ i, s: `v${i}` })) },
      { keys: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k'"; ${i}`, i])) },
    ];
    const ids: number[] = [];
    for (const args of cases) {
      const before = await countJobs(app);
      try {
        const id = await app.configureTask("echo").defer(args as JsonObject);
        expect((await app.jobManager.getJob(id))!.args).toEqual(args);
        ids.push(id);
      } catch (error) {
        expect(isProcError(error), String(error)).toBe(true);
        expect(await countJobs(app)).toBe(before);
      }
    }
    await drain();
    for (const [k, id] of ids.entries()) expect(seen.get(id)).toEqual(cases[k]);
    expect(ids.length).toBe(cases.length);
  });

  it("queue, lock, queueing lock and task names: stored verbatim or rejected, never executed as SQL", async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        oddString,
        oddString,
        oddString,
        oddString,
        async (task, queue, lock, queueingLock) => {
          const before = await countJobs(app);
          let id: number;
          try {
            id = await app
              .configureTask(task, { allowUnknown: true, queue, lock, queueingLock })
              .defer({ task, queue });
          } catch (error) {
            expect(isProcError(error), String(error)).toBe(true);
            expect(await countJobs(app)).toBe(before);
            return;
          }
          accepted++;
          expect(await app.jobManager.getJob(id)).toMatchObject({
            task,
            queue,
            lock,
            queueingLock,
            status: "todo",
          });
          expect(await countJobs(app)).toBe(before + 1);
          // Clean up so that queueing locks do not collide across runs.
          await app.jobManager.cancelJob(id, { delete: true });
        },
      ),
      { numRuns: NUM_RUNS },
    );
    // The table is still there, and so is everything else.
    expect(await countJobs(app)).toBeGreaterThan(0);
    console.log(`fuzz names (${backend}): ${accepted}/${NUM_RUNS} accepted verbatim`);
  });

  it("a worker on an odd queue runs an odd-named task's job with odd args", async () => {
    await fc.assert(
      fc.asyncProperty(oddString, fc.dictionary(oddString, oddJson, { maxKeys: 3 }), async (queue, args) => {
        let id: number;
        try {
          id = await app.configureTask("echo", { queue }).defer(args as JsonObject);
        } catch (error) {
          expect(isProcError(error), String(error)).toBe(true);
          return;
        }
        await drain([queue]);
        expect(await app.jobManager.getJob(id)).toMatchObject({ status: "succeeded", queue });
        expect(seen.get(id)).toEqual(normalized(args));
      }),
      { numRuns: Math.ceil(NUM_RUNS / 3) },
    );
  });

  it("cron expressions: valid ones schedule, invalid ones throw InvalidOptions", async () => {
    const field = fc.oneof(
      fc.constantFrom(
        "*",
        "*/5",
        "*/0",
        "1-5",
        "5-1",
        "0",
        "59",
        "60",
        "99999999999",
        "MON",
        "JAN",
        "L",
        "5#2",
      ),
      fc.constantFrom("?", "H", ",", "/", "-", "#", "'", ";", "' OR 1=1 --", "@daily", "@reboot", "\u0000"),
      fc.integer({ min: -5, max: 100 }).map(String),
    );
    const plausible = fc.constantFrom("*", "*/5", "1-5", "1", "3", "1,2,3", "*/15");
    const expression = fc.oneof(
      fc.array(plausible, { minLength: 5, maxLength: 6 }).map((f) => f.join(" ")),
      fc
        .tuple(fc.array(plausible, { minLength: 5, maxLength: 6 }), field, fc.nat(5))
        .map(([f, odd, at]) => f.map((v, i) => (i === at ? odd : v)).join(" ")),
      fc.array(field, { minLength: 1, maxLength: 7 }).map((f) => f.join(" ")),
      fc.string({ unit: "binary", maxLength: 20 }),
    );
    const timezone = fc.oneof(
      { arbitrary: fc.constantFrom("UTC", "Europe/Paris", "America/New_York"), weight: 4 },
      fc.constantFrom("Mars/Olympus", "'; --", ""),
      fc.string(),
    );
    let valid = 0;
    let ticks = 0;
    await fc.assert(
      fc.asyncProperty(expression, timezone, async (cron, tz) => {
        const problems = cronProblems(cron, tz);
        const task = app.task({ name: `tick_${ticks++}` }, async () => {});
        if (problems.length === 0) {
          valid++;
          const now = Math.floor(Date.now() / 1000);
          const next = parseCron(cron, tz).nextAfter(now);
          expect(Number.isInteger(next) && next > now).toBe(true);
          periodic(app, { cron, timezone: tz }, task);
        } else {
          expect(() => parseCron(cron, tz)).toThrow(expect.objectContaining({ code: "INVALID_OPTIONS" }));
          try {
            periodic(app, { cron, timezone: tz }, task);
            expect.unreachable(`periodic accepted ${JSON.stringify(cron)}`);
          } catch (error) {
            expect(isProcError(error, "INVALID_OPTIONS"), String(error)).toBe(true);
          }
        }
      }),
      { numRuns: NUM_RUNS * 2 },
    );
    console.log(`fuzz cron (${backend}): ${valid}/${NUM_RUNS * 2} valid`);
  });
});
