/**
 * A PgBouncer of the benchmark's own in transaction mode: its ini and userlist in a temp
 * dir, a spare port, run as a child process (as the postgres user when we are root: it
 * refuses to run as root), stopped at the end of the run. The system service is left
 * alone. The same recipe as chaos/src/pgbouncer.ts, whose suite tests proc through it.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { sleep } from "./stats.js";

/** Server connections PgBouncer keeps per database and user: the connection budget under test. */
export const PGBOUNCER_POOL_SIZE = 20;

export const PGBOUNCER_MISSING = "pgbouncer is not on PATH (apt-get install -y pgbouncer)";

export interface PgBouncer {
  version: string;
  /** `serverUrl` with host and port replaced by the bouncer's. */
  url(serverUrl: string): string;
  stop(): Promise<void>;
}

export function pgBouncerVersion(): string | null {
  try {
    const out = execFileSync("pgbouncer", ["--version"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return out
      .split("\n")[0]!
      .replace(/^PgBouncer\s*/i, "")
      .trim();
  } catch {
    return null;
  }
}

function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Start one in transaction mode in front of `serverUrl`'s server; null when not installed. */
export async function startPgBouncer(serverUrl: string): Promise<PgBouncer | null> {
  const version = pgBouncerVersion();
  if (version === null) return null;
  const server = new URL(serverUrl);
  const port = await sparePort();
  const dir = mkdtempSync(join(tmpdir(), "proc-bench-pgbouncer-"));
  chmodSync(dir, 0o755);
  const user = decodeURIComponent(server.username || "postgres");
  const ini = join(dir, "pgbouncer.ini");
  const userlist = join(dir, "userlist.txt");
  writeFileSync(userlist, `"${user}" "${decodeURIComponent(server.password)}"\n`);
  writeFileSync(
    ini,
    [
      "[databases]",
      `* = host=${server.hostname} port=${server.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      `auth_type = ${server.password ? "plain" : "trust"}`,
      `auth_file = ${userlist}`,
      "pool_mode = transaction",
      "max_client_conn = 1000",
      `default_pool_size = ${PGBOUNCER_POOL_SIZE}`,
      "ignore_startup_parameters = extra_float_digits,options",
      "",
    ].join("\n"),
  );
  chmodSync(ini, 0o644);
  chmodSync(userlist, 0o644);
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn("pgbouncer", [...(asRoot ? ["-u", "postgres"] : []), ini], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let spawnError: Error | null = null;
  child.once("error", (error) => {
    spawnError = error;
  });
  let output = "";
  child.stdout!.on("data", (d) => {
    output += d;
  });
  child.stderr!.on("data", (d) => {
    output += d;
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const url = (target: string) => {
    const u = new URL(target);
    u.hostname = "127.0.0.1";
    u.port = String(port);
    return u.toString();
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (spawnError) throw new Error(`pgbouncer could not start: ${(spawnError as Error).message}`);
    if (child.exitCode !== null) throw new Error(`pgbouncer exited at start:\n${output}`);
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
    version,
    url,
    async stop() {
      if (child.exitCode === null) child.kill("SIGINT");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
