import { parseArgs } from "node:util";

/** Every system the benchmark knows, in the order tables list them. */
export const SYSTEM_NAMES = [
  "proc",
  "proc-small-heap",
  "proc-delete",
  "proc-no-prefetch",
  "proc-otel",
  "proc-otel-sdk",
  "graphile",
  "graphile-lq",
  "pgboss",
  "pgboss-poll",
  "pgboss-naive",
  "sql",
  "sql-simple",
] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];
/**
 * Systems run only when --systems names them: the @proc/otel variants measure what tracing
 * costs proc itself, not a comparison with peers; proc-no-prefetch is a knob of proc's; the
 * pg-boss variants other than its best configuration are labelled references whose drains
 * mostly end at the time limit.
 */
const OPT_IN_SYSTEMS: readonly SystemName[] = [
  "proc-otel",
  "proc-otel-sdk",
  "proc-no-prefetch",
  "pgboss-poll",
  "pgboss-naive",
];
const DEFAULT_SYSTEMS = SYSTEM_NAMES.filter((s) => !OPT_IN_SYSTEMS.includes(s));

/**
 * Scenarios by id; "resources" (worker RSS, connections) is read off the drains. The
 * scale-out ones are long and run only when --only names them.
 */
export const SCENARIO_IDS = [
  "batch",
  "single",
  "drain",
  "latency",
  "history",
  "memory",
  "scaleout",
  "latestart",
  "pgbouncer",
  "fetchcost",
  "flow",
] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];
const OPT_IN_SCENARIOS: readonly ScenarioId[] = ["scaleout", "latestart", "pgbouncer", "fetchcost", "flow"];
const DEFAULT_SCENARIOS = SCENARIO_IDS.filter((s) => !OPT_IN_SCENARIOS.includes(s));

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
  /** Memory: jobs with args of `memoryArgsBytes` drained at `memoryConcurrency`. */
  memoryJobs: number;
  memoryArgsBytes: number;
  memoryConcurrency: number;
  /** Scale-out: `scaleoutJobs` drained by each count of worker processes, c each. */
  scaleoutJobs: number;
  scaleoutProcesses: number[];
  scaleoutConcurrency: number;
  /** A scale-out drain still running after this long is stopped (partial). */
  scaleoutTimeoutMs: number;
  /** Late start: `lateJobs` jobs of `lateJobMs` each; the second worker starts `lateAfterMs` after the first. */
  lateJobs: number;
  lateJobMs: number;
  lateAfterMs: number;
  /** Fetch cost: `fetchCostRows` todo jobs over `fetchCostQueues` queues; the worker listens to 2. */
  fetchCostRows: number;
  fetchCostQueues: number;
  /** Timed fetches per case (each in a transaction rolled back, so the table does not change). */
  fetchCostRepeats: number;
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
  memoryJobs: 5_000,
  memoryArgsBytes: 10_240,
  memoryConcurrency: 10,
  scaleoutJobs: 100_000,
  scaleoutProcesses: [1, 2, 4, 8],
  scaleoutConcurrency: 10,
  scaleoutTimeoutMs: 60_000,
  lateJobs: 1_500,
  lateJobMs: 20,
  lateAfterMs: 1_000,
  fetchCostRows: 1_000_000,
  fetchCostQueues: 50,
  fetchCostRepeats: 20,
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
  memoryJobs: 1_000,
  memoryArgsBytes: 10_240,
  memoryConcurrency: 10,
  scaleoutJobs: 10_000,
  scaleoutProcesses: [1, 2],
  scaleoutConcurrency: 10,
  scaleoutTimeoutMs: 20_000,
  lateJobs: 1_000,
  lateJobMs: 20,
  lateAfterMs: 500,
  fetchCostRows: 100_000,
  fetchCostQueues: 50,
  fetchCostRepeats: 5,
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

const USAGE = `usage: pnpm bench [--quick] [--only ${SCENARIO_IDS.join(",")}]
                  [--systems ${SYSTEM_NAMES.join(",")}] [--reps N]
       default scenarios: ${DEFAULT_SCENARIOS.join(",")}
       default systems: ${DEFAULT_SYSTEMS.join(",")}
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
    scenarios: parseList("only", values.only, SCENARIO_IDS, DEFAULT_SCENARIOS),
    systems,
    sizes,
    from: values.from === undefined ? null : values.from.split(",").filter(Boolean),
  };
}
