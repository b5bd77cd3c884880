import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { App, InvalidOptions } from "@proc/core";
import { recordingLogger } from "@proc/fixtures";
import { PgConnector } from "@proc/pg-connector";
import { PGliteConnector } from "@proc/pglite-connector";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  type TestApp,
  type TestAppOptions,
  createTestApp,
  expectDeferred,
  expectNotDeferred,
  runUntilIdle,
} from "../src/index.js";
import { templateFile } from "../src/template.js";
import { app, dailyReport, sendEmail, signUp } from "./fixtures/app.js";
import { cacheDir } from "./helpers.js";

const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "proc-testing-cache-"));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Test apps of a test, closed after it even when it fails. */
const opened: TestApp[] = [];
async function testApp<A extends App>(target: A, options: TestAppOptions = {}): Promise<TestApp<A>> {
  const t = await createTestApp(target, options);
  opened.push(t);
  return t;
}
afterEach(async () => {
  for (const t of opened.splice(0).reverse()) await t.close();
});

describe("createTestApp", () => {
  it("runs the app module's own app on a migrated in-memory PGlite, and gives its connector back on close", async () => {
    const own = app.connector;
    expect(own).toBeInstanceOf(PgConnector);

    const t = await testApp(app, { cacheDir });

    expect(t.app).toBe(app);
    expect(app.isOpen).toBe(true);
    expect(app.connector).toBe(t.connector);
    expect(app.connector.kind).toBe("pglite");
    expect((await app.schemaStatus()).pending).toEqual([]);
    const id = await signUp.defer({ user: { id: 1, email: "ann@example.com", plan: "free" } });
    expect((await app.jobManager.getJob(id))?.status).toBe("todo");
    await runUntilIdle(app);
    await expectDeferred(sendEmail, { template: "tips" });

    await t.close();
    await t.close();
    expect(app.isOpen).toBe(false);
    expect(app.connector).toBe(own);
  });

  it("gives every test app an empty database", async () => {
    const first = await testApp(app, { cacheDir });
    await signUp.defer({ user: { id: 1, email: "ann@example.com", plan: "free" } });
    await first.close();
    const second = await testApp(app, { cacheDir });
    await expectNotDeferred(signUp);
    await second.close();
  });

  it("reset() starts over from an empty database; the clock and the scheduler go on", async () => {
    const t = await testApp(app, { cacheDir, now: new Date("2030-01-01T08:00:00Z") });
    await signUp.defer({ user: { id: 1, email: "ann@example.com", plan: "free" } });
    await t.clock.advance({ minutes: 90 });
    await expectDeferred(dailyReport, {}, { count: 1 });

    await t.reset();

    await expectNotDeferred(signUp);
    await expectNotDeferred(dailyReport);
    expect(new Date().toISOString()).toBe("2030-01-01T09:30:00.000Z");
    await t.clock.advance({ days: 1 });
    const [job] = await expectDeferred(dailyReport, {}, { count: 1 });
    expect(job?.args.timestamp).toBe(Date.parse("2030-01-02T09:00:00Z") / 1000);
    await t.close();
    await expect(t.reset()).rejects.toThrow("this test app is closed");
  });

  it("closes with await using", async () => {
    {
      await using t = await createTestApp(app, { cacheDir });
      expect(t.app.isOpen).toBe(true);
    }
    expect(app.isOpen).toBe(false);
  });

  it("refuses an open app, an app already in a test app, and bad options, naming each", async () => {
    const t = await testApp(app, { cacheDir });
    await expect(createTestApp(app, { cacheDir })).rejects.toThrow(
      /app: it already runs in a test app; close that one first/,
    );
    await t.close();

    await expect(createTestApp(undefined as never)).rejects.toThrow(/app: expected a proc App/);
    const error = await testApp(app, {
      now: new Date("nope"),
      clock: {} as never,
      cacheDir: 3 as never,
    }).catch((e) => e);
    expect(error).toBeInstanceOf(InvalidOptions);
    expect(error.problems).toEqual([
      "now: expected a valid Date or a number of ms since the epoch",
      "clock: expected the clock of another test app (otherTestApp.clock)",
      "cacheDir: expected a directory path, or false",
    ]);
    // An app opened by hand stays on its own database.
    const opened = new App({ connector: { ...noopConnector } });
    await opened.open();
    await expect(createTestApp(opened)).rejects.toThrow(/app: it is open; createTestApp opens it/);
    await opened.close();
  });
});

describe("createTestApp cleans up", () => {
  it("when the app's scheduler fails to start: the app is closed and back on its own connector", async () => {
    const own = new PgConnector({});
    const broken = new App({ connector: own });
    broken.addWorkerService({
      name: "scheduler",
      run: async () => {
        throw new Error("no cron parser");
      },
    });

    const error = await createTestApp(broken, { cacheDir, now: new Date("2030-01-01T00:00:00Z") }).catch(
      (e) => e,
    );

    expect(error.message).toBe("the scheduler of the test app failed");
    expect(error.cause.message).toBe("no cron parser");
    expect(broken.isOpen).toBe(false);
    expect(broken.connector).toBe(own);
    expect(Date.now()).not.toBe(Date.parse("2030-01-01T00:00:00Z")); // Date given back
  });
});

describe("the migrated database cache", () => {
  /** A dump of a migrated database holding one job, to recognise a test app started from it. */
  let marked: Uint8Array | undefined;
  async function markedDump(): Promise<Uint8Array> {
    if (!marked) {
      const t = await testApp(app, { cacheDir });
      await sendEmail.defer({ to: "marker@example.com", template: "from the cache" });
      marked = gzipSync(
        new Uint8Array(await (await (t.connector as PGliteConnector).dumpDataDir()).arrayBuffer()),
      );
      await t.close();
    }
    return marked;
  }

  it("keeps the dump in the cache directory, and starts test apps from the one it finds there", async () => {
    // Some test app of this run made it (whichever test file came first).
    const t = await testApp(app, { cacheDir });
    expect(existsSync(templateFile(app, cacheDir))).toBe(true);
    await t.close();
    const dir = await freshDir();
    await writeFile(templateFile(app, dir), await markedDump());

    await testApp(app, { cacheDir: dir });
    await expectDeferred(sendEmail, { to: "marker@example.com" });
  });

  it("waits while another process makes the dump, then starts from it", async () => {
    const dir = await freshDir();
    const file = templateFile(app, dir);
    await writeFile(`${file}.lock`, "");
    const starting = testApp(app, { cacheDir: dir });
    // The other process is done some time later.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await writeFile(file, await markedDump());

    await starting;
    await expectDeferred(sendEmail, { to: "marker@example.com" });
    expect(existsSync(`${file}.lock`)).toBe(true); // the other process's: not ours to remove
  });

  it("replaces a damaged dump, taking over a stale lock (its maker died)", async () => {
    const dir = await freshDir();
    const file = templateFile(app, dir);
    await writeFile(file, "not a gzipped tarball");
    await writeFile(`${file}.lock`, "");
    const longAgo = new Date(performance.timeOrigin + performance.now() - 10 * 60_000);
    await utimes(`${file}.lock`, longAgo, longAgo);

    await testApp(app, { cacheDir: dir });

    await expectNotDeferred(sendEmail);
    expect(gunzipSync(await readFile(file)).length).toBeGreaterThan(1_000_000);
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it("replaces a dump that does not hold a migrated database", async () => {
    // The real dump, with proc's schema dropped.
    const broken = new PGliteConnector({
      loadDataDir: new Blob([gunzipSync(await readFile(templateFile(app, cacheDir)))]),
    });
    await broken.open();
    await broken.query("DROP SCHEMA proc CASCADE");
    const dump = await broken.dumpDataDir();
    await broken.close();
    const dir = await freshDir();
    await writeFile(templateFile(app, dir), gzipSync(new Uint8Array(await dump.arrayBuffer())));

    await testApp(app, { cacheDir: dir });
    expect((await app.schemaStatus()).pending).toEqual([]);
    const replaced = new PGliteConnector({
      loadDataDir: new Blob([gunzipSync(await readFile(templateFile(app, dir)))]),
    });
    await replaced.open();
    expect(await replaced.query("SELECT to_regclass('proc.jobs') IS NOT NULL AS ok")).toEqual([{ ok: true }]);
    await replaced.close();
  });

  describe("for an app with its own schema", () => {
    const logger = recordingLogger();
    const custom = new App({ connector: new PgConnector({}), schema: "jobs", logger });
    const ping = custom.task({ name: "ping" }, async () => "pong");
    const warnings = (action: string) => logger.records.filter((r) => r.action === action);

    it("migrates that schema; without a cache directory, in memory only", async () => {
      const t = await testApp(custom, { cacheDir: false });
      await ping.defer({});
      expect((await runUntilIdle(custom)).runs.map((r) => r.result)).toEqual(["pong"]);
      expect(await t.connector.query('SELECT count(*)::int AS n FROM "jobs".jobs')).toEqual([{ n: 1 }]);
    });

    it("does not use a cache directory that others can write to, or that is no directory", async () => {
      const shared = await freshDir();
      await chmod(shared, 0o777);
      const notADir = join(await freshDir(), "file");
      await writeFile(notADir, "");

      await (await testApp(custom, { cacheDir: shared })).close();
      await (await testApp(custom, { cacheDir: notADir })).close();

      expect(await readdir(shared)).toEqual([]);
      expect(
        warnings("template_cache_unusable").map((r) => [r.level, r.fields.dir, r.fields.problem]),
      ).toEqual([
        ["warn", shared, "other users can write to it"],
        ["warn", notADir, expect.stringContaining("EEXIST")],
      ]);
    });

    it("goes on without the cache when the dump cannot be written", async () => {
      const dir = await freshDir();
      // A directory where the file should go: the rename fails.
      await mkdir(join(templateFile(custom, dir), "in-the-way"), { recursive: true });

      await testApp(custom, { cacheDir: dir });
      await expectNotDeferred(ping);

      expect(warnings("template_cache_error")).toEqual([
        expect.objectContaining({
          level: "warn",
          fields: expect.objectContaining({ file: templateFile(custom, dir) }),
        }),
      ]);
      expect((await readdir(dir)).sort()).toEqual([basename(templateFile(custom, dir))]);
    });
  });
});

const noopConnector = {
  kind: "fake",
  open: async () => {},
  close: async () => {},
  query: async () => [],
  transaction: async () => {
    throw new Error("unused");
  },
  listen: async () => ({ close: async () => {} }),
  reserve: () => ({ query: async () => [], close: async () => {} }),
  wrapConnection: () => ({ query: async () => [] }),
};
