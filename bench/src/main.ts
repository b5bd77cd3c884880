/**
 * `pnpm bench`: proc against graphile-worker, pg-boss and a bare-SQL floor on one
 * Postgres. See ../README.md for what is measured and how.
 */
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { type BenchConfig, readConfig } from "./config.js";
import { Admin } from "./db.js";
import { type RunRecord, markdownTable } from "./report.js";
import { scenarios } from "./scenarios.js";
import { SAME_PRODUCER_AS } from "./systems/index.js";

const RESULTS_DIR = fileURLToPath(new URL("../results/", import.meta.url));

async function main(): Promise<void> {
  const config = readConfig(process.argv.slice(2));
  await mkdir(RESULTS_DIR, { recursive: true });
  if (config.from) {
    const records = await readRecords(config.from);
    await writeReport(config, records, `re-rendered from ${config.from.join(", ")}`);
    return;
  }
  const { sizes } = config;
  const admin = await Admin.connect(config.databaseUrl);
  const started = Date.now();
  const records: RunRecord[] = [];
  const pgVersion = await admin.serverVersion();
  // Written as runs finish, so that an interrupted run keeps what it measured.
  const jsonlPath = `${RESULTS_DIR}latest.jsonl`;
  await writeFile(jsonlPath, "");
  try {
    for (const scenario of scenarios(sizes, config.scenarios)) {
      const systems = config.systems.filter((s) => scenario.needsWorker || !SAME_PRODUCER_AS[s]);
      for (let repetition = 1; repetition <= sizes.repetitions; repetition++) {
        // Rotate the order each repetition so that no system always runs first (cold
        // caches) or right after the same neighbour.
        const offset = (repetition - 1) % systems.length;
        const order = [...systems.slice(offset), ...systems.slice(0, offset)];
        for (const system of order) {
          const measures = await admin.withFreshDatabase(`${scenario.id}_${system}`, (database) =>
            scenario.run({ admin, sizes }, system, database),
          );
          const record: RunRecord = {
            scenario: scenario.id,
            system,
            repetition,
            measures,
            at: new Date().toISOString(),
          };
          records.push(record);
          const line = JSON.stringify(record);
          await appendFile(jsonlPath, `${line}\n`);
          console.log(line);
          const summary = measures
            .map((m) => `${m.label}: ${m.value.toFixed(1)} ${m.unit}${m.partial ? " (partial)" : ""}`)
            .join("; ");
          console.error(`[${scenario.id} ${repetition}/${sizes.repetitions}] ${system}: ${summary}`);
        }
      }
    }
  } finally {
    await admin.close();
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  await writeReport(
    config,
    records,
    `PostgreSQL ${pgVersion}; Node ${process.version}; ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}; ` +
      `${sizes.repetitions} repetition(s); ${minutes} min`,
  );
}

/** Records of several runs; a later file's scenarios replace those of earlier files. */
async function readRecords(files: readonly string[]): Promise<RunRecord[]> {
  let records: RunRecord[] = [];
  for (const file of files) {
    const text = await readFile(file, "utf8");
    const added = text
      .split("\n")
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line) as RunRecord);
    const replaced = new Set(added.map((r) => r.scenario));
    records = [...records.filter((r) => !replaced.has(r.scenario)), ...added];
  }
  return records;
}

async function writeReport(config: BenchConfig, records: RunRecord[], context: string): Promise<void> {
  const table = markdownTable(records, config.systems);
  const document = [
    `# proc benchmark results (${config.quick ? "quick smoke run" : "full sizes"})`,
    "",
    `${new Date().toISOString()}; ${context}.`,
    "",
    "Medians over repetitions. Ratio = system ÷ proc, per repetition, median; ↑ higher is better, " +
      "↓ lower is better. (partial*) = a drain stopped at its time limit " +
      `(${config.sizes.drainTimeoutMs / 1000} s) or a latency run that did not see every job start; ` +
      "a partial rate counts the jobs finished by then. Raw runs: latest.jsonl. " +
      "How it is measured: ../README.md.",
    "",
    table,
    "",
  ].join("\n");
  await writeFile(`${RESULTS_DIR}latest.md`, document);
  console.log(`\n${table}\n`);
  console.error("written: bench/results/latest.md");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
