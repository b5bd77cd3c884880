/**
 * A throwaway PgBouncer in front of the test server: its own ini and userlist in a temp
 * dir, a spare port, run as a child process (as the postgres user when we are root,
 * because PgBouncer refuses to run as root).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { sleep } from "./harness.js";

export type PoolMode = "session" | "transaction" | "statement";

/** What a run without the binary is told, in one line: what is missing and how to get it. */
export const PGBOUNCER_MISSING =
  "the PgBouncer suite needs the pgbouncer binary, which is not on PATH: apt-get install -y pgbouncer";

export function hasPgBouncer(): boolean {
  try {
    execFileSync("sh", ["-c", "command -v pgbouncer"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the PgBouncer suite can run, decided before anything starts: without the
 * binary it is skipped with one line saying what to install or, with PROC_REQUIRE_PG=1
 * (CI, where skipping would hide the suite), fails with that line alone.
 */
export function pgBouncerSuiteEnabled(): boolean {
  if (hasPgBouncer()) return true;
  if (process.env.PROC_REQUIRE_PG === "1") {
    const error = new Error(`PROC_REQUIRE_PG=1 but ${PGBOUNCER_MISSING}`);
    // The stack would only point here, and vitest would print it under the message.
    error.stack = `${error.name}: ${error.message}`;
    throw error;
  }
  process.stderr.write(`skipped: ${PGBOUNCER_MISSING}\n`);
  return false;
}

async function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface PgBouncer {
  port: number;
  /** `serverUrl` with host and port replaced by the bouncer's. */
  url(serverUrl: string): string;
  output(): string;
  stop(): Promise<void>;
}

export async function startPgBouncer(serverUrl: string, mode: PoolMode): Promise<PgBouncer> {
  if (!hasPgBouncer()) throw new Error(PGBOUNCER_MISSING);
  const server = new URL(serverUrl);
  const port = await sparePort();
  const dir = mkdtempSync(join(tmpdir(), "proc-pgbouncer-"));
  chmodSync(dir, 0o755);
  const user = decodeURIComponent(server.username || "postgres");
  const ini = join(dir, "pgbouncer.ini");
  const userlist = join(dir, "userlist.txt");
  writeFileSync(userlist, `"${user}" ""\n`);
  writeFileSync(
    ini,
    [
      "[databases]",
      `* = host=${server.hostname} port=${server.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${userlist}`,
      `pool_mode = ${mode}`,
      "max_client_conn = 500",
      "default_pool_size = 10",
      "ignore_startup_parameters = extra_float_digits,options",
      "",
    ].join("\n"),
  );
  chmodSync(ini, 0o644);
  chmodSync(userlist, 0o644);
  const asRoot = process.getuid?.() === 0;
  const proc: ChildProcess = spawn("pgbouncer", [...(asRoot ? ["-u", "postgres"] : []), ini], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  // A spawn failure (a binary that cannot be executed) is an 'error' event, which
  // unheard would crash the test run: it ends the wait below instead.
  let spawnError = null as Error | null;
  proc.once("error", (error) => {
    spawnError = error;
  });
  let output = "";
  proc.stdout!.on("data", (d) => {
    output += d;
  });
  proc.stderr!.on("data", (d) => {
    output += d;
  });
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  const url = (target: string) => {
    const u = new URL(target);
    u.hostname = "127.0.0.1";
    u.port = String(port);
    return u.toString();
  };
  // Ready once it answers a query.
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (spawnError) throw new Error(`pgbouncer could not start: ${spawnError.message}`);
    if (proc.exitCode !== null) throw new Error(`pgbouncer exited at start:\n${output}`);
    const client = new pg.Client({ connectionString: url(serverUrl) });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("SELECT 1");
      await client.end();
      break;
    } catch (error) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw new Error(`pgbouncer never answered: ${error}\n${output}`);
      await sleep(100);
    }
  }
  return {
    port,
    url,
    output: () => output,
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGINT");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
