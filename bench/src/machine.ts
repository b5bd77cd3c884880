/**
 * Where and when a run was measured, printed with every table and written as the first
 * line of the JSON-lines file: a number is only a claim with its machine, server settings
 * and commit next to it.
 */
import { execFileSync } from "node:child_process";
import { cpus, loadavg, release, totalmem } from "node:os";
import type { Admin } from "./db.js";

/** Server settings that move queue numbers (WAL flushes, memory, connection budget). */
const PG_SETTINGS = [
  "shared_buffers",
  "synchronous_commit",
  "fsync",
  "full_page_writes",
  "wal_level",
  "wal_buffers",
  "max_wal_size",
  "checkpoint_timeout",
  "max_connections",
  "work_mem",
  "effective_cache_size",
  "autovacuum",
  "jit",
] as const;

export interface Environment {
  kind: "environment";
  /** When the run started (ISO). */
  date: string;
  git: { commit: string | null; dirtyFiles: number | null };
  node: string;
  os: string;
  cpu: { cores: number; model: string };
  memoryGb: number;
  /** 1-minute load average when the run started: others' work on the same machine. */
  loadAverage: number;
  postgres: { version: string; settings: Record<string, string> };
  pgbouncer?: string | null;
}

function git(args: string[]): string | null {
  try {
    return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

export async function captureEnvironment(admin: Admin): Promise<Environment> {
  const status = git(["status", "--porcelain"]);
  const settings: Record<string, string> = {};
  for (const name of PG_SETTINGS) settings[name] = await admin.setting(name);
  return {
    kind: "environment",
    date: new Date().toISOString(),
    git: {
      commit: git(["rev-parse", "--short=12", "HEAD"]),
      // Uncommitted changes anywhere in the tree (others' included): the commit alone
      // does not say what ran.
      dirtyFiles: status === null ? null : status.split("\n").filter(Boolean).length,
    },
    node: process.version,
    os: `${process.platform} ${release()}`,
    cpu: { cores: cpus().length, model: cpus()[0]?.model.trim() ?? "unknown" },
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: Math.round(loadavg()[0]! * 100) / 100,
    postgres: { version: await admin.setting("server_version"), settings },
  };
}

/** The environment as markdown lines, for the results file and the console. */
export function describeEnvironment(env: Environment): string {
  const commit = env.git.commit
    ? `${env.git.commit}${env.git.dirtyFiles ? ` + ${env.git.dirtyFiles} uncommitted file(s)` : ""}`
    : "unknown";
  const settings = Object.entries(env.postgres.settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  return [
    `- date: ${env.date}; commit: ${commit}`,
    `- machine: ${env.cpu.cores} × ${env.cpu.model}, ${env.memoryGb} GB RAM, ${env.os}; ` +
      `load average at start: ${env.loadAverage}; Node ${env.node}`,
    `- PostgreSQL ${env.postgres.version}: ${settings}` +
      (env.pgbouncer ? `; PgBouncer ${env.pgbouncer}` : ""),
  ].join("\n");
}
