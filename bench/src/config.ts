import { parseArgs } from "node:util";

/** Every system the benchmark knows, in the order tables list them. */
export const SYSTEM_NAMES = [
  "proc",
  "proc-small-heap",
  "proc-delete",
  "proc-otel",
  "proc-otel-sdk",
  "graphile",
  "graphile-lq",
  "pgboss",
  "sql",
] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];
/**
 * Systems run when --systems is not given. The @proc/otel variants measure what tracing costs
 * proc itself, not a comparison with peers: ask for them (`--systems proc,proc-otel,proc-otel-sdk`).
 */
const DEFAULT_SYSTEMS = SYSTEM_NAMES.filter((s) => s !== "proc-otel" && s !== "proc-otel-sdk");

/** Scenarios by id; "resources" (worker RSS, connections) is read off the drains. */
export const SCENARIO_IDS = ["batch", "single", "drain", "latency", "history"] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];

export interface Sizes {
  repetitions: number;
  batchJobs: number;
  batchSize: number;
  singleJobs: number;
  drainJobs: number;
  drainConcurrencies: number[];
  latencyJobs: number;
  latencyGapMs: number;
  /** Finished rows already in the table for the "history" drain. */
  historyRows: number;
  historyConcurrency: number;
  /**
   * A drain still running after this long is stopped and its rate computed from the jobs
   * done so far (marked partial). pg-boss needs it: its work loop sleeps the polling
   * interval after every batch, so 20,000 jobs at batchSize 1 would take hours.
   */
  drainTimeoutMs: number;
}

const FULL: Sizes = {
  repetitions: 3,
  batchJobs: 20_000,
  batchSize: 1_000,
  singleJobs: 2_000,
  drainJobs: 20_000,
  drainConcurrencies: [1, 10, 50],
  latencyJobs: 200,
  latencyGapMs: 20,
  historyRows: 1_000_000,
  historyConcurrency: 10,
  drainTimeoutMs: 10_000,
};

const QUICK: Sizes = {
  repetitions: 1,
  batchJobs: 2_000,
  batchSize: 500,
  singleJobs: 200,
  drainJobs: 2_000,
  drainConcurrencies: [1, 10, 50],
  latencyJobs: 40,
  latencyGapMs: 20,
  historyRows: 50_000,
  historyConcurrency: 10,
  drainTimeoutMs: 5_000,
};

export interface BenchConfig {
  databaseUrl: string;
  quick: boolean;
  scenarios: ScenarioId[];
  systems: SystemName[];
  sizes: Sizes;
  /** Re-render the table from these JSON-lines files instead of running anything. */
  from: string[] | null;
}

const USAGE = `usage: pnpm bench [--quick] [--only batch,single,drain,latency,history]
                  [--systems ${SYSTEM_NAMES.join(",")}] [--reps N]
       pnpm bench --from results/a.jsonl,results/b.jsonl   (table only; a later file's
                  scenarios replace the same scenarios of earlier files)
env: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)`;

function parseList<T extends string>(
  flag: string,
  value: string | undefined,
  known: readonly T[],
  defaults: readonly T[] = known,
): T[] {
  if (value === undefined) return [...defaults];
  const items = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = items.filter((s) => !known.includes(s as T));
  if (unknown.length || items.length === 0)
    throw new Error(
      `--${flag}: unknown ${unknown.join(", ") || "(empty)"}; expected some of ${known.join(",")}`,
    );
  // Keep the canonical order so tables read the same whatever the flag's order.
  return known.filter((k) => items.includes(k));
}

export function readConfig(argv: string[]): BenchConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      systems: { type: "string" },
      reps: { type: "string" },
      from: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const sizes = { ...(quick ? QUICK : FULL) };
  if (values.reps !== undefined) {
    const reps = Number(values.reps);
    if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps: expected a positive integer\n${USAGE}`);
    sizes.repetitions = reps;
  }
  const systems = parseList("systems", values.systems, SYSTEM_NAMES, DEFAULT_SYSTEMS);
  if (!systems.includes("proc"))
    console.error("note: proc is not among --systems, so the ratio column stays empty");
  return {
    databaseUrl: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    quick,
    scenarios: parseList("only", values.only, SCENARIO_IDS),
    systems,
    sizes,
    from: values.from === undefined ? null : values.from.split(",").filter(Boolean),
  };
}
