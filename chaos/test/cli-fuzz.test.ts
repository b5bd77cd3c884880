/**
 * The CLI under bad input: `proc defer` with odd task names, JSON args, queues, locks,
 * priorities and dates either defers exactly what it was given (exit 0, prints the id)
 * or refuses with exit 1 or 2 and one line on stderr (no stack trace), writing nothing.
 * A few dozen runs: each spawns a process.
 */
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { adminUrl, CLI_BIN, createChaosDatabase, REPO_DIR, spawnTs } from "../src/harness.js";

const RUNS = Number(process.env.CHAOS_CLI_RUNS ?? 24);
const PARALLEL = 4;

// argv cannot carry NUL: everything else goes.
const argText = fc
  .oneof(
    fc.string({ unit: "grapheme", maxLength: 20 }),
    fc.constantFrom(
      "'; DROP TABLE proc.jobs; --",
      '"',
      "--queue",
      "-c",
      "$(id)",
      "`id`",
      "\\",
      "🦄",
      " ",
      "",
    ),
  )
  .filter((s) => !s.includes("\u0000"));
const jsonArgs = fc.oneof(
  fc.dictionary(argText, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }).map((o) => JSON.stringify(o)),
  argText,
  fc.constantFrom("[]", "null", "1", '{"a":', '{"__proto__": {"x": 1}}', '{"n": 1e999}', '{"s": "\\u0000"}'),
);
const input = fc.record({
  task: argText,
  args: fc.option(jsonArgs, { nil: undefined, freq: 4 }),
  queue: fc.option(argText, { nil: undefined }),
  lock: fc.option(argText, { nil: undefined }),
  priority: fc.option(fc.oneof({ arbitrary: fc.integer().map(String), weight: 3 }, argText), {
    nil: undefined,
    freq: 2,
  }),
  in: fc.option(fc.oneof({ arbitrary: fc.integer({ min: -10, max: 1e6 }).map(String), weight: 3 }, argText), {
    nil: undefined,
    freq: 2,
  }),
});

describe.skipIf(!adminUrl())("CLI under bad input (pg)", () => {
  it(`proc defer: ${RUNS} odd invocations either defer exactly or fail with a one-line message`, {
    timeout: 240_000,
  }, async () => {
    const db = await createChaosDatabase("cli");
    const app = new App({ connector: new PgConnector({ connectionString: db.url }), logger: silentLogger });
    await app.open();
    const count = async () =>
      (await app.connector.query<{ n: number }>("SELECT count(*)::int AS n FROM proc.jobs"))[0]!.n;
    const outcomes = { deferred: 0, refused: 0 };
    try {
      const samples = fc.sample(input, {
        numRuns: RUNS,
        seed: Number(process.env.CHAOS_SEED ?? Date.now() % 1e9),
      });
      // Serialised on the database side (counts must not interleave), parallel in spawning.
      let lock = Promise.resolve();
      const check = async (s: (typeof samples)[number]) => {
        const argv = ["defer", s.task, ...(s.args === undefined ? [] : [s.args]), "--unknown", "--json"];
        if (s.queue !== undefined) argv.push(`--queue=${s.queue}`);
        if (s.lock !== undefined) argv.push(`--lock=${s.lock}`);
        if (s.priority !== undefined) argv.push(`--priority=${s.priority}`);
        if (s.in !== undefined) argv.push(`--in=${s.in}`);
        let release!: () => void;
        const previous = lock;
        lock = new Promise((r) => {
          release = r;
        });
        await previous;
        const before = await count();
        const child = spawnTs(CLI_BIN, argv, { DATABASE_URL: db.url }, { cwd: REPO_DIR });
        const { code } = await child.exit;
        const stdout = child.stdout.join("");
        const stderr = child.stderr.join("");
        const after = await count();
        try {
          await verify();
        } finally {
          release();
        }
        async function verify() {
          const what = `proc ${JSON.stringify(argv)} → ${code}\nstdout: ${stdout}\nstderr: ${stderr}`;
          if (code === 0) {
            outcomes.deferred++;
            const { id } = JSON.parse(stdout) as { id: number };
            const job = (await app.jobManager.getJob(id))!;
            expect(job, what).toMatchObject({ task: s.task, status: "todo" });
            expect(job.args, what).toEqual(s.args === undefined ? {} : JSON.parse(s.args));
            if (s.queue !== undefined) expect(job.queue, what).toBe(s.queue);
            if (s.lock !== undefined) expect(job.lock, what).toBe(s.lock);
            expect(after, what).toBe(before + 1);
            await app.jobManager.cancelJob(id, { delete: true });
          } else {
            outcomes.refused++;
            expect([1, 2], what).toContain(code);
            expect(after, what).toBe(before);
            expect(stderr, what).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
            if (code === 1) expect(stderr.trim().split("\n").length, what).toBeLessThanOrEqual(2);
          }
        }
      };
      const queue = [...samples];
      await Promise.all(
        Array.from({ length: PARALLEL }, async () => {
          for (let s = queue.shift(); s; s = queue.shift()) await check(s);
        }),
      );
      console.log(`fuzz cli: ${JSON.stringify(outcomes)}`);
      expect(outcomes.deferred + outcomes.refused).toBe(RUNS);
    } finally {
      await app.close();
      await db.drop();
    }
  });
});
