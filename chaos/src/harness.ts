/**
 * Shared by the chaos suites and the soak: databases of their own on the shared server,
 * child processes (workers, producers, the CLI) run from TypeScript sources, and a few
 * measurements. Nothing here touches a database it did not create.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import pg from "pg";

export const CHAOS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = join(CHAOS_DIR, "..");
export const WORKER_SCRIPT = join(CHAOS_DIR, "src", "worker-process.ts");
export const PRODUCER_SCRIPT = join(CHAOS_DIR, "src", "producer-process.ts");
export const CLI_BIN = join(REPO_DIR, "packages", "cli", "src", "bin.ts");
const TSX = createRequire(import.meta.url).resolve("tsx");

/**
 * The server's admin URL, or null when the real-Postgres suites must be skipped. With
 * PROC_REQUIRE_PG=1 (CI) a missing DATABASE_URL is an error instead.
 */
export function adminUrl(): string | null {
  const url = process.env.DATABASE_URL;
  if (!url && process.env.PROC_REQUIRE_PG === "1")
    throw new Error("PROC_REQUIRE_PG=1 but DATABASE_URL is not set: the chaos suites need a real Postgres");
  return url || null;
}

export function withDatabase(url: string, database: string, params: Record<string, string> = {}): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

/** One statement on the admin connection (the server's default database). */
export async function adminQuery<Row = Record<string, unknown>>(
  sql: string,
  params: unknown[] = [],
): Promise<Row[]> {
  const url = adminUrl();
  if (!url) throw new Error("DATABASE_URL is not set");
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as Row[];
  } finally {
    await client.end().catch(() => {});
  }
}

export interface ChaosDatabase {
  name: string;
  url: string;
  /** `url` with query parameters added (application_name=...). */
  urlWith(params: Record<string, string>): string;
  drop(): Promise<void>;
}

/** A fresh database of this run's own, migrated unless told otherwise. */
export async function createChaosDatabase(
  label: string,
  options: { migrate?: boolean } = {},
): Promise<ChaosDatabase> {
  const admin = adminUrl();
  if (!admin) throw new Error("DATABASE_URL is not set");
  const name = `proc_chaos_${label}_${randomBytes(4).toString("hex")}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  const url = withDatabase(admin, name);
  if (options.migrate ?? true) {
    const app = new App({ connector: new PgConnector({ connectionString: url }), logger: silentLogger });
    await app.open();
    try {
      await app.migrate();
    } finally {
      await app.close();
    }
  }
  return {
    name,
    url,
    urlWith: (params) => withDatabase(admin, name, params),
    async drop() {
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

export interface Child {
  proc: ChildProcess;
  pid: number;
  stdout: string[];
  stderr: string[];
  /** Messages received over IPC. */
  messages: unknown[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
  /** Resolves once stdout+stderr contain `text`; rejects if the child exits first. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  output(): string;
}

/** A TypeScript script in a child node process, with the workspace's source condition and an IPC channel. */
export function spawnTs(
  script: string,
  args: readonly string[] = [],
  env: Record<string, string | undefined> = {},
  options: { cwd?: string } = {},
): Child {
  const proc = spawn(process.execPath, ["--conditions=@proc/source", "--import", TSX, script, ...args], {
    cwd: options.cwd ?? CHAOS_DIR,
    env: { ...process.env, NO_COLOR: "1", ...env } as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const child: Child = {
    proc,
    pid: proc.pid!,
    stdout: [],
    stderr: [],
    messages: [],
    exited: false,
    exit: new Promise((resolve) =>
      proc.on("exit", (code, signal) => {
        child.exited = true;
        resolve({ code, signal });
      }),
    ),
    output: () => child.stdout.join("") + child.stderr.join(""),
    waitForOutput(text, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`child ${proc.pid} never printed ${JSON.stringify(text)}:\n${tail(child.output())}`),
          );
        }, timeoutMs);
        const check = () => {
          if (!child.output().includes(text)) return;
          cleanup();
          resolve();
        };
        const onExit = () => {
          cleanup();
          if (child.output().includes(text)) resolve();
          else
            reject(
              new Error(
                `child ${proc.pid} exited before printing ${JSON.stringify(text)}:\n${tail(child.output())}`,
              ),
            );
        };
        const cleanup = () => {
          clearTimeout(timer);
          proc.stdout!.off("data", check);
          proc.stderr!.off("data", check);
          proc.off("exit", onExit);
        };
        proc.stdout!.on("data", check);
        proc.stderr!.on("data", check);
        proc.on("exit", onExit);
        check();
      });
    },
  };
  proc.stdout!.on("data", (d) => child.stdout.push(String(d)));
  proc.stderr!.on("data", (d) => child.stderr.push(String(d)));
  proc.on("message", (m) => child.messages.push(m));
  return child;
}

export function tail(text: string, chars = 3000): string {
  return text.length > chars ? `…${text.slice(-chars)}` : text;
}

/** What a worker child (src/worker-process.ts) is told to do, through CHAOS_WORKER. */
export interface WorkerConfig {
  /** Worker options (JSON-able). */
  worker?: Record<string, unknown>;
  /** retryStalledJobs options; omitted: no stalled-job recovery (and no scheduler). */
  stalled?: Record<string, unknown>;
  /** pg pool max of the child's connector. @defaultValue pg's default (10) */
  poolMax?: number;
  /** Report each execution over IPC as well as (for "table") in the executions table. */
  record?: "table" | "ipc" | "none";
}

export function spawnWorker(url: string, config: WorkerConfig = {}): Child {
  return spawnTs(WORKER_SCRIPT, [], { DATABASE_URL: url, CHAOS_WORKER: JSON.stringify(config) });
}

/** Resident set size of a live process, in MB (Linux /proc). */
export function rssMb(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Least-squares slope of y over x. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Poll until `check` returns a truthy value, or throw after `timeoutMs`. */
export async function until<T>(
  check: () => T | Promise<T>,
  { timeoutMs = 30_000, intervalMs = 100, what = "condition" } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
