import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gunzip, gzip } from "node:zlib";
import { App, LATEST_MIGRATION, type Logger, silentLogger } from "@proc/core";
import { PGliteConnector } from "@proc/pglite-connector";

/**
 * Migrated databases to start test apps from. A fresh PGlite instance runs initdb (about
 * 6 s and 800 MB); one loaded from a dump of its data directory starts in about a second.
 * So each process migrates one database per schema, dumps it, and starts every test app
 * from that dump; with a cache directory, the dump is also kept on disk for the next
 * processes (other test files, the next run), compressed, under a name that holds the
 * schema name, the migration version and a hash of the schema SQL: a proc release that
 * changes the schema never loads an old dump.
 */

/** The default cache directory: one per OS user, in the system's temporary directory. */
export function defaultCacheDir(): string {
  return join(tmpdir(), `proc-testing-${process.getuid?.() ?? "user"}`);
}

export interface TemplateOptions {
  /** Where dumps are kept between processes; false: in this process only. */
  cacheDir: string | false;
  logger: Logger;
}

/** Dumps made or read by this process, by file (by key when not cached on disk). */
const dumps = new Map<string, Promise<Uint8Array>>();

/**
 * Where the dump for `app`'s schema is cached in `dir`: its name holds the schema name,
 * the migration version and a hash of the schema SQL.
 */
export function templateFile(app: App, dir: string): string {
  return join(dir, `proc-${templateKey(app)}.tar.gz`);
}

function templateKey(app: App): string {
  const hash = createHash("sha256")
    .update(`${LATEST_MIGRATION}\n${app.schemaSql()}`)
    .digest("hex")
    .slice(0, 16);
  return `${app.schema}-v${LATEST_MIGRATION}-${hash}`;
}

/**
 * The dump of a database migrated for `app`'s schema: from this process's memory, else
 * from the cache directory, else made now (and then kept in both).
 */
export async function migratedDump(app: App, options: TemplateOptions): Promise<Uint8Array> {
  const dir = options.cacheDir === false ? null : await usableDir(options.cacheDir, options.logger);
  const file = dir === null ? null : templateFile(app, dir);
  const key = file ?? templateKey(app);
  let dump = dumps.get(key);
  if (!dump) {
    dump = file ? cachedOnDisk(file, () => makeDump(app.schema), options.logger) : makeDump(app.schema);
    dumps.set(key, dump);
    // A failure is not kept: the next test app tries again.
    dump.catch(() => dumps.delete(key));
  }
  return dump;
}

/**
 * Forget a dump that turned out unusable (it did not load as a migrated database): the
 * next call makes a new one, and overwrites the file.
 */
export async function discardDump(app: App, options: TemplateOptions): Promise<void> {
  const dir = options.cacheDir === false ? null : await usableDir(options.cacheDir, options.logger);
  if (dir === null) {
    dumps.delete(templateKey(app));
    return;
  }
  const file = templateFile(app, dir);
  dumps.delete(file);
  await rm(file, { force: true });
}

async function makeDump(schema: string): Promise<Uint8Array> {
  const connector = new PGliteConnector();
  const app = new App({ connector, schema, logger: silentLogger });
  await app.open();
  try {
    await app.migrate();
    const dump = await connector.dumpDataDir();
    return new Uint8Array(await dump.arrayBuffer());
  } finally {
    await app.close();
  }
}

/** Cache directories checked by this process: each is looked at (and warned about) once. */
const dirs = new Map<string, Promise<string | null>>();

/**
 * The cache directory, if it is safe to load databases from: a directory (not a link)
 * of this user that no one else can write to, since a dump planted there would become
 * every test's database. Otherwise null, with a warning: dumps then stay in memory.
 */
function usableDir(dir: string, logger: Logger): Promise<string | null> {
  let checked = dirs.get(dir);
  if (!checked) {
    checked = checkDir(dir, logger);
    dirs.set(dir, checked);
  }
  return checked;
}

async function checkDir(dir: string, logger: Logger): Promise<string | null> {
  let problem: string | null = null;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const info = await lstat(dir);
    if (!info.isDirectory()) problem = "it is not a directory";
    else if (process.getuid && info.uid !== process.getuid()) problem = "another user owns it";
    else if (process.platform !== "win32" && (info.mode & 0o022) !== 0)
      problem = "other users can write to it";
  } catch (error) {
    problem = (error as Error).message;
  }
  if (!problem) return dir;
  logger.warn(
    { action: "template_cache_unusable", dir, problem },
    `not caching the migrated test database in ${dir} (${problem}); each process migrates its own`,
  );
  return null;
}

/** How long a lock may be held before another process takes over (its maker died). */
const STALE_LOCK_MS = 120_000;

/**
 * The dump in `file`, or one made by `make` and written there. Processes starting
 * together (parallel test files) make it once: the first takes a lock file, the others
 * wait for the dump to appear (or for the lock to go stale: its maker died). Written to
 * a temporary name and renamed, so that a reader never sees half a file.
 */
async function cachedOnDisk(file: string, make: () => Promise<Uint8Array>, logger: Logger) {
  const lock = `${file}.lock`;
  for (;;) {
    const cached = await readDump(file);
    if (cached) return cached;
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(lock, "wx", 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const age = await stat(lock).then(
        (s) => realNow() - s.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) await rm(lock, { force: true });
      else await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    try {
      // Another process may have finished between our read and our lock.
      const late = await readDump(file);
      if (late) return late;
      const dump = await make();
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
      try {
        await writeFile(tmp, await promisify(gzip)(dump, { level: 1 }), { mode: 0o600 });
        await rename(tmp, file);
      } catch (error) {
        // The dump is made: the tests go on without the cache.
        await rm(tmp, { force: true });
        logger.warn(
          { action: "template_cache_error", file, error },
          `could not cache the migrated test database in ${file}`,
        );
      }
      return dump;
    } finally {
      await handle.close();
      await rm(lock, { force: true });
    }
  }
}

/** A cached dump, or null when there is none (or it cannot be trusted or read). */
async function readDump(file: string): Promise<Uint8Array | null> {
  try {
    const info = await lstat(file);
    if (!info.isFile() || (process.getuid && info.uid !== process.getuid())) return null;
    return new Uint8Array(await promisify(gunzip)(await readFile(file)));
  } catch {
    return null;
  }
}

/** The wall clock, even while a test clock is frozen (lock ages are real time). */
function realNow(): number {
  return performance.timeOrigin + performance.now();
}
