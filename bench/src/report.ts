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

/**
 * scenario | system | median | ratio vs proc. The ratio is system / proc, taken per
 * repetition (runs of one repetition ran back to back) and then the median of those.
 */
export function markdownTable(records: readonly RunRecord[], systems: readonly SystemName[]): string {
  const byLabel = new Map<string, Map<SystemName, Array<{ repetition: number; measure: Measure }>>>();
  for (const record of records)
    for (const measure of record.measures) {
      const bySystem = byLabel.get(measure.label) ?? new Map();
      byLabel.set(measure.label, bySystem);
      const runs = bySystem.get(record.system) ?? [];
      runs.push({ repetition: record.repetition, measure });
      bySystem.set(record.system, runs);
    }
  const lines = ["| scenario | system | median | ratio vs proc |", "|---|---|---:|---:|"];
  const labels = [...byLabel.keys()].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  for (const label of labels) {
    const bySystem = byLabel.get(label)!;
    const procRuns = bySystem.get("proc") ?? [];
    for (const system of systems) {
      const runs = bySystem.get(system);
      if (!runs?.length) continue;
      const { unit, better } = runs[0]!.measure;
      const partial = runs.some((r) => r.measure.partial) ? " (partial*)" : "";
      const ratios = runs.flatMap((r) => {
        const proc = procRuns.find((p) => p.repetition === r.repetition);
        return proc && proc.measure.value !== 0 ? [r.measure.value / proc.measure.value] : [];
      });
      const ratio = system === "proc" || ratios.length === 0 ? "" : `${median(ratios).toFixed(2)}×`;
      const arrow = better === "higher" ? "↑" : "↓";
      lines.push(
        `| ${label} (${unit} ${arrow}) | ${system} | ${format(median(runs.map((r) => r.measure.value)))}${partial} | ${ratio} |`,
      );
    }
  }
  return lines.join("\n");
}
