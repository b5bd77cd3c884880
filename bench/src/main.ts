/**
 * `pnpm bench`: proc against graphile-worker, pg-boss and a bare-SQL floor on one
 * Postgres. See ../README.md for what is measured and how.
 */
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type BenchConfig, readConfig } from "./config.js";
import { Admin } from "./db.js";
import { type Environment, captureEnvironment, describeEnvironment } from "./machine.js";
import { type PgBouncer, startPgBouncer } from "./pgbouncer.js";
import { type RunRecord, floorTable, markdownTable } from "./report.js";
import { type Env, scenarios } from "./scenarios.js";
import { SAME_PRODUCER_AS } from "./systems/index.js";

const RESULTS_DIR = fileURLToPath(new URL("../results/", import.meta.url));

async function main(): Promise<void> {
  const config = readConfig(process.argv.slice(2));
  await mkdir(RESULTS_DIR, { recursive: true });
  if (config.from) {
    const { environments, records } = await readRuns(config.from);
    await writeReport(config, records, environments, `re-rendered from ${config.from.join(", ")}`);
    return;
  }
  const { sizes } = config;
  const admin = await Admin.connect(config.databaseUrl);
  const started = Date.now();
  const records: RunRecord[] = [];
  const environment = await captureEnvironment(admin);
  let bouncer: Promise<PgBouncer | null> | undefined;
  const env: Env = {
    admin,
    sizes,
    pgbouncer: () => {
      bouncer ??= startPgBouncer(config.databaseUrl).then((b) => {
        environment.pgbouncer = b?.version ?? null;
        if (!b) console.error("note: pgbouncer is not installed; the PgBouncer runs are skipped");
        return b;
      });
      return bouncer;
    },
  };
  // Written as runs finish, so that an interrupted run keeps what it measured; the
  // environment first (and again at the end, once PgBouncer's version is known).
  const jsonlPath = `${RESULTS_DIR}latest.jsonl`;
  await writeFile(jsonlPath, `${JSON.stringify(environment)}\n`);
  try {
    for (const scenario of scenarios(sizes, config.scenarios)) {
      const systems = config.systems.filter(
        (s) =>
          (scenario.needsWorker || !SAME_PRODUCER_AS[s]) &&
          (!scenario.systems || scenario.systems.includes(s)),
      );
      for (let repetition = 1; repetition <= sizes.repetitions; repetition++) {
        // Rotate the order each repetition so that no system always runs first (cold
        // caches) or right after the same neighbour.
        const offset = (repetition - 1) % systems.length;
        const order = [...systems.slice(offset), ...systems.slice(0, offset)];
        for (const system of order) {
          const measures = await admin.withFreshDatabase(`${scenario.id}_${system}`, (database) =>
            scenario.run(env, system, database),
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
    await (await bouncer)?.stop();
    await admin.close();
  }
  if (environment.pgbouncer !== undefined) await appendFile(jsonlPath, `${JSON.stringify(environment)}\n`);
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  await writeReport(config, records, [environment], `${sizes.repetitions} repetition(s); ${minutes} min`);
}

/**
 * Environments and records of several runs; a later file's scenarios replace those of
 * earlier files. A file of an older version of the benchmark has no environment line.
 */
async function readRuns(
  files: readonly string[],
): Promise<{ environments: Environment[]; records: RunRecord[] }> {
  let records: RunRecord[] = [];
  const environments: Environment[] = [];
  for (const file of files) {
    const lines = (await readFile(file, "utf8"))
      .split("\n")
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line) as RunRecord | Environment);
    const added: RunRecord[] = [];
    let environment: Environment | null = null;
    for (const line of lines)
      if ("kind" in line && line.kind === "environment") environment = line;
      else added.push(line as RunRecord);
    if (environment) environments.push(environment);
    const replaced = new Set(added.map((r) => r.scenario));
    records = [...records.filter((r) => !replaced.has(r.scenario)), ...added];
  }
  return { environments, records };
}

async function writeReport(
  config: BenchConfig,
  records: RunRecord[],
  environments: readonly Environment[],
  context: string,
): Promise<void> {
  const table = markdownTable(records, config.systems);
  const floor = floorTable(records);
  const machine = environments.length
    ? environments.map(describeEnvironment).join("\n\n")
    : "- environment: not recorded (results of an older version of the benchmark)";
  const document = [
    `# proc benchmark results (${config.quick ? "quick smoke run" : "full sizes"})`,
    "",
    machine,
    `- ${context}; table written ${new Date().toISOString()}`,
    "",
    "Median over repetitions, with the range (min–max) when there are several. Ratio = " +
      "system ÷ proc computed per repetition (the two ran back to back), then the median of " +
      "those and their range; ↑ higher is better, ↓ lower is better. (partial*) = a drain stopped " +
      `at its time limit (${config.sizes.drainTimeoutMs / 1000} s) or a latency run that did not see ` +
      "every job start; a partial rate counts the jobs finished by then. Raw runs: latest.jsonl. " +
      "How it is measured: ../README.md.",
    "",
    table,
    "",
    ...(floor
      ? [
          "## proc against the pipelined floor (`sql`)",
          "",
          "proc ÷ floor per repetition, median (min–max); targets from issue #16.",
          "",
          floor,
          "",
        ]
      : []),
  ].join("\n");
  await writeFile(`${RESULTS_DIR}latest.md`, document);
  console.log(`\n${machine}\n\n${table}\n${floor ? `\n${floor}\n` : ""}`);
  console.error("written: bench/results/latest.md");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
