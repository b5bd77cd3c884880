import type { SystemName } from "./config.js";
import type { Measure } from "./scenarios.js";
import { median } from "./stats.js";

/** One JSON line of the results: a scenario run of one system. */
export interface RunRecord {
  scenario: string;
  system: SystemName;
  repetition: number;
  measures: Measure[];
  at: string;
}

function format(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** "median (min–max)", or the value alone when there is one. */
function withRange(values: readonly number[], show: (v: number) => string): string {
  const m = show(median(values));
  if (values.length < 2) return m;
  return `${m} (${show(Math.min(...values))}–${show(Math.max(...values))})`;
}

const ratio = (v: number) => `${v.toFixed(2)}×`;

type Runs = Map<SystemName, Array<{ repetition: number; measure: Measure }>>;

function byLabel(records: readonly RunRecord[]): Map<string, Runs> {
  const labels = new Map<string, Runs>();
  for (const record of records)
    for (const measure of record.measures) {
      const bySystem = labels.get(measure.label) ?? new Map();
      labels.set(measure.label, bySystem);
      const runs = bySystem.get(record.system) ?? [];
      runs.push({ repetition: record.repetition, measure });
      bySystem.set(record.system, runs);
    }
  return labels;
}

/** a ÷ b for every repetition both ran (they ran back to back). */
function perRepetitionRatios(
  a: ReadonlyArray<{ repetition: number; measure: Measure }>,
  b: ReadonlyArray<{ repetition: number; measure: Measure }>,
): number[] {
  return a.flatMap((r) => {
    const other = b.find((p) => p.repetition === r.repetition);
    const value = other ? r.measure.value / other.measure.value : Number.NaN;
    return Number.isFinite(value) ? [value] : [];
  });
}

const sortLabels = (labels: Iterable<string>) =>
  [...labels].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));

/**
 * scenario | system | median (min–max) | ratio vs proc (min–max) | runs. The ratio is
 * system ÷ proc, taken per repetition (runs of one repetition ran back to back), then the
 * median of those, with their range.
 */
export function markdownTable(records: readonly RunRecord[], systems: readonly SystemName[]): string {
  const labels = byLabel(records);
  const lines = [
    "| scenario | system | median (min–max) | ratio vs proc (min–max) | runs |",
    "|---|---|---:|---:|---:|",
  ];
  for (const label of sortLabels(labels.keys())) {
    const bySystem = labels.get(label)!;
    const procRuns = bySystem.get("proc") ?? [];
    for (const system of systems) {
      const runs = bySystem.get(system);
      if (!runs?.length) continue;
      const { unit, better } = runs[0]!.measure;
      const partial = runs.some((r) => r.measure.partial) ? " (partial*)" : "";
      const ratios = system === "proc" ? [] : perRepetitionRatios(runs, procRuns);
      const arrow = better === "higher" ? "↑" : "↓";
      const values = runs.map((r) => r.measure.value);
      lines.push(
        `| ${label} (${unit} ${arrow}) | ${system} | ${withRange(values, format)}${partial} | ` +
          `${ratios.length ? withRange(ratios, ratio) : ""} | ${runs.length} |`,
      );
    }
  }
  return lines.join("\n");
}

/** Issue #16's targets: proc ÷ the pipelined floor (`sql`), by label prefix. */
const FLOOR_TARGETS: Array<[prefix: string, target: number]> = [
  ["1. batch enqueue", 0.9],
  ["3. drain", 0.75],
  ["5. drain", 0.75],
];

/**
 * proc ÷ the pipelined floor for every throughput both measured, per repetition, with the
 * target where issue #16 sets one. Empty when either is missing.
 */
export function floorTable(records: readonly RunRecord[]): string {
  const labels = byLabel(records);
  const lines = ["| scenario | proc ÷ floor (min–max) | target | met |", "|---|---:|---:|---|"];
  for (const label of sortLabels(labels.keys())) {
    const bySystem = labels.get(label)!;
    const procRuns = bySystem.get("proc");
    const floorRuns = bySystem.get("sql");
    if (!procRuns?.length || !floorRuns?.length || procRuns[0]!.measure.unit !== "jobs/s") continue;
    const ratios = perRepetitionRatios(procRuns, floorRuns);
    if (!ratios.length) continue;
    const target = FLOOR_TARGETS.find(([prefix]) => label.startsWith(prefix))?.[1];
    const met = target === undefined ? "" : median(ratios) >= target ? "yes" : "no";
    lines.push(
      `| ${label} | ${withRange(ratios, ratio)} | ${target === undefined ? "" : `≥ ${target}×`} | ${met} |`,
    );
  }
  return lines.length > 2 ? lines.join("\n") : "";
}
