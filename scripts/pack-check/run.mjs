// The published packages, checked as a user gets them (issue 12): pack every package with pnpm
// (as `pnpm publish` / `changeset publish` would), inspect each tarball, lint it with publint and
// attw, install the tarballs with plain npm into projects outside the workspace, and there run an
// ESM app, a CJS app, tsc (strict, skipLibCheck false, nodenext and bundler), the CLI against the
// real Postgres, @proc/testing under node:test and jest, and a minimal CLI install without its
// optional peers. Any defect exits 1. Needs DATABASE_URL (CI sets it) and the npm registry.
//
//   node scripts/pack-check/run.mjs            # pnpm check:packages
import { execFileSync, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const DATABASE_URL = process.env.DATABASE_URL;
if (!DATABASE_URL) fail("DATABASE_URL is not set: the CLI and the apps run against the real Postgres");

const work = mkdtempSync(join(tmpdir(), "proc-pack-check-"));
const keep = process.env.PROC_PACK_CHECK_KEEP === "1";
const problems = [];
const started = Date.now();

function fail(message) {
  console.error(`pack-check: ${message}`);
  process.exit(1);
}

function step(title) {
  console.log(`\n── ${title} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}

/** Run a command; its output is shown only when it fails (or always with `show`). */
function run(cmd, args, { cwd, env, expectCode = 0, show = false } = {}) {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.status !== expectCode) {
    problems.push(`${cmd} ${args.join(" ")} (in ${cwd ?? root}) exited ${r.status}, expected ${expectCode}`);
    console.error(output.trimEnd());
  } else if (show) console.log(output.trimEnd());
  return { ...r, output };
}

function check(ok, message) {
  if (!ok) {
    problems.push(message);
    console.error(`  ✗ ${message}`);
  } else console.log(`  ✓ ${message}`);
}

// ---- 1. pack ---------------------------------------------------------------------------------
step("build and pack every published package with pnpm");
const packages = readdirSync(join(root, "packages"))
  .map((dir) => ({
    dir: join(root, "packages", dir),
    manifest: readJson(join(root, "packages", dir, "package.json")),
  }))
  .filter((p) => p.manifest && !p.manifest.private);
const tarballs = join(work, "tarballs");
mkdirSync(tarballs);
execFileSync(
  bin("turbo"),
  ["run", "build", ...packages.map((p) => `--filter=${p.manifest.name}`), "--output-logs=errors-only"],
  {
    cwd: root,
    stdio: "inherit",
  },
);
// Run as `pnpm check:packages`: npm_execpath is that pnpm (a native executable in pnpm 12).
const pnpm = process.env.npm_execpath?.includes("pnpm") ? process.env.npm_execpath : "pnpm";
for (const p of packages)
  execFileSync(pnpm, ["pack", "--pack-destination", tarballs], { cwd: p.dir, stdio: "pipe" });
const tgz = Object.fromEntries(
  packages.map((p) => {
    const file = `${p.manifest.name.replace("@", "").replace("/", "-")}-${p.manifest.version}.tgz`;
    if (!existsSync(join(tarballs, file))) fail(`pnpm pack left no ${file} for ${p.manifest.name}`);
    return [p.manifest.name, join(tarballs, file)];
  }),
);
console.log(`  packed ${Object.keys(tgz).join(", ")}`);

// ---- 2. what is inside each tarball -----------------------------------------------------------
step("inspect each tarball's manifest and files");
for (const [name, file] of Object.entries(tgz)) {
  const dir = join(work, "unpacked", name);
  mkdirSync(dir, { recursive: true });
  execFileSync("tar", ["-xzf", file, "-C", dir]);
  const pkg = join(dir, "package");
  const manifest = readFileSync(join(pkg, "package.json"), "utf8");
  const m = JSON.parse(manifest);
  const files = listFiles(pkg);
  check(!manifest.includes("workspace:"), `${name}: no workspace: ranges`);
  check(
    !manifest.includes("@proc/source"),
    `${name}: no @proc/source export condition (src/ is not shipped)`,
  );
  check(!m.scripts && !m.devDependencies, `${name}: no scripts or devDependencies`);
  check(typeof m.engines?.node === "string", `${name}: engines.node = ${m.engines?.node}`);
  check(m.license === "MIT" && files.includes("LICENSE"), `${name}: MIT license and a LICENSE file`);
  check(
    Boolean(m.repository?.url && m.homepage && m.bugs?.url && m.keywords?.length),
    `${name}: repository, homepage, bugs, keywords`,
  );
  check(
    files.some((f) => f.startsWith("dist/") && f.endsWith(".d.ts")),
    `${name}: dist with types`,
  );
  check(!files.some((f) => f.startsWith("src/")), `${name}: no sources`);
  const peers = { ...m.peerDependencies };
  if (name !== "@proc/core")
    check(
      /^\^/.test(peers["@proc/core"] ?? ""),
      `${name}: @proc/core is a caret peer (${peers["@proc/core"]})`,
    );
  for (const [dep, range] of Object.entries({ ...m.dependencies, ...m.peerDependencies }))
    check(/^[\^>]/.test(range), `${name}: ${dep} has a range, not a pin (${range})`);
  const readme = readFileSync(join(pkg, "README.md"), "utf8");
  const relative = [...readme.matchAll(/\]\((?!https?:|#|mailto:)([^)]+)\)/g)].map((x) => x[1]);
  check(
    relative.length === 0,
    `${name}: README links are absolute (the npm page cannot follow ${relative.join(", ") || "relative ones"})`,
  );
}

// ---- 3. publint and attw ----------------------------------------------------------------------
step("publint and attw on every tarball");
for (const [name, file] of Object.entries(tgz)) {
  run(bin("publint"), ["run", file, "--strict"], { cwd: work });
  const { exports } = readJson(join(work, "unpacked", name, "package", "package.json"));
  const esmOnly = !exports["."].require;
  // Subpath exports (@proc/otel/prometheus) need a resolver that reads `exports`: TypeScript's
  // legacy node10 mode cannot, so those packages are held to the node16 profile (node16, bundler).
  const subpaths = Object.keys(exports).some((k) => k !== "." && k !== "./package.json");
  const profile = esmOnly ? "esm-only" : subpaths ? "node16" : "strict";
  run(bin("attw"), [file, "--format", "ascii", "--no-emoji", "--no-color", "--profile", profile], {
    cwd: work,
  });
  console.log(`  ${name}: checked (attw profile ${profile})`);
}

// ---- 4. the full fixture project --------------------------------------------------------------
step("install every tarball with npm into a project outside the workspace");
const app = join(work, "app");
cpSync(join(here, "fixture"), app, { recursive: true });
writeJson(join(app, "package.json"), {
  name: "proc-pack-check-app",
  private: true,
  type: "module",
  dependencies: Object.fromEntries(Object.entries(tgz).map(([n, f]) => [n, `file:${f}`])),
  devDependencies: {
    typescript: "5.9.3",
    tsx: "^4.23.15",
    "@types/node": "^20.19.0",
    jest: "^30.0.0",
    // @proc/otel's peers: the API, and for @proc/otel/prometheus the metrics SDK and exporter.
    "@opentelemetry/api": "^1.9.0",
    "@opentelemetry/sdk-metrics": "~2.12.0",
    "@opentelemetry/exporter-prometheus": "~0.223.0",
  },
});
npmInstall(app);
const copies = findAll(join(app, "node_modules"), "@proc/core");
check(copies.length === 1, `one copy of @proc/core installed (found ${copies.length})`);

const database = createDatabase();
const env = { DATABASE_URL: database.url };
try {
  step("ESM app, CJS app");
  run("node", ["esm.mjs"], { cwd: app, env, show: true });
  run("node", ["cjs.cjs"], { cwd: app, env, show: true });

  step("tsc --noEmit, strict, skipLibCheck false: nodenext and bundler");
  for (const config of ["tsconfig.nodenext.json", "tsconfig.bundler.json"])
    if (run(join(app, "node_modules", ".bin", "tsc"), ["-p", config], { cwd: app }).status === 0)
      console.log(`  ✓ ${config}`);

  step("the CLI against the real Postgres");
  const proc = (args, expectCode = 0) =>
    run(join(app, "node_modules", ".bin", "proc"), args, { cwd: app, env, expectCode });
  check(proc(["--help"]).stdout.includes("proc worker"), "proc --help lists the commands");
  proc(["schema", "apply"]);
  check(
    /\b0 pending\b|up to date|nothing to apply/i.test(proc(["schema", "status"]).output),
    "proc schema status: nothing pending",
  );
  const id = Number(proc(["--app", "./cli-app.ts", "defer", "send_email", '{"to":"a@b.c"}']).stdout.trim());
  check(Number.isInteger(id) && id > 0, `proc defer printed a job id (${id})`);
  proc(["--app", "./cli-app.ts", "worker", "--one-shot"]);
  const shown = JSON.parse(proc(["jobs", "show", String(id), "--json"]).stdout || "{}");
  check(shown.status === "succeeded", `the one-shot worker ran job ${id} (status ${shown.status})`);

  step("@proc/testing under node:test and jest");
  run("node", ["--test", "testing.node.test.mjs"], { cwd: app, show: true });
  run(join(app, "node_modules", ".bin", "jest"), ["--ci", "testing.jest.test.cjs"], {
    cwd: app,
    show: true,
    env: { NODE_OPTIONS: "--experimental-vm-modules" },
  });
} finally {
  database.drop();
}

// ---- 5. a minimal install: the CLI without its optional peers --------------------------------
step("minimal install: core, pglite-connector, worker and cli, without tsx or pg-connector");
const minimal = join(work, "minimal");
cpSync(join(here, "minimal"), minimal, { recursive: true });
const minimalDeps = ["@proc/core", "@proc/pglite-connector", "@proc/worker", "@proc/cli"];
writeJson(join(minimal, "package.json"), {
  name: "proc-pack-check-minimal",
  private: true,
  type: "module",
  dependencies: Object.fromEntries(minimalDeps.map((n) => [n, `file:${tgz[n]}`])),
});
npmInstall(minimal);
for (const absent of ["tsx", "esbuild", "pg", "@proc/pg-connector"])
  check(!existsSync(join(minimal, "node_modules", absent)), `${absent} is not installed`);
const mproc = (args, expectCode) =>
  run(join(minimal, "node_modules", ".bin", "proc"), args, {
    cwd: minimal,
    expectCode,
    env: { DATABASE_URL: "" },
  });
check(
  mproc(["--app", "./app.mjs", "schema", "status"], 0).status === 0,
  "a PGlite app runs without @proc/pg-connector",
);
check(
  mproc(["--app", "./app.ts", "queues"], 1).stderr.includes("needs tsx: npm install --save-dev tsx"),
  "a .ts app without tsx: the error names the package to install",
);
check(
  run(join(minimal, "node_modules", ".bin", "proc"), ["queues"], {
    cwd: minimal,
    env: { DATABASE_URL },
    expectCode: 1,
  }).stderr.includes("needs @proc/pg-connector: npm install @proc/pg-connector"),
  "DATABASE_URL without @proc/pg-connector: the error names the package to install",
);

// ---- 6. footprint -----------------------------------------------------------------------------
step("installed footprint of core + pg-connector + worker");
const small = join(work, "footprint");
mkdirSync(small);
writeJson(join(small, "package.json"), {
  name: "proc-pack-check-footprint",
  private: true,
  dependencies: Object.fromEntries(
    ["@proc/core", "@proc/pg-connector", "@proc/worker"].map((n) => [n, `file:${tgz[n]}`]),
  ),
});
npmInstall(small);
const kb = Number(
  execFileSync("du", ["-sk", join(small, "node_modules")], { encoding: "utf8" }).split("\t")[0],
);
const count = readdirSync(join(small, "node_modules"), { recursive: true }).filter((f) =>
  String(f).endsWith("package.json"),
).length;
console.log(`  node_modules: ${(kb / 1024).toFixed(1)} MiB, ${count} package.json files`);

// ---- done -------------------------------------------------------------------------------------
if (!keep) rmSync(work, { recursive: true, force: true });
else console.log(`\nkept ${work}`);
if (problems.length) {
  console.error(
    `\npack-check: ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join("\n")}`,
  );
  process.exit(1);
}
console.log(
  `\npack-check: every published package installs and runs (${((Date.now() - started) / 1000).toFixed(0)} s)`,
);

// ---- helpers ----------------------------------------------------------------------------------
function readJson(path) {
  return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : null;
}
function writeJson(path, value) {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}
function listFiles(dir, prefix = "") {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}
function findAll(dir, name) {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f === `${name}/package.json` || f.endsWith(`/node_modules/${name}/package.json`));
}
function npmInstall(cwd) {
  const r = run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd });
  if (r.status !== 0) fail(`npm install failed in ${cwd}`);
}
function createDatabase() {
  const name = `proc_pack_${process.pid}`;
  const url = new URL(DATABASE_URL);
  const admin = (sql) => execFileSync("psql", [DATABASE_URL, "-qAtc", sql], { stdio: "pipe" });
  admin(`DROP DATABASE IF EXISTS ${name}`);
  admin(`CREATE DATABASE ${name}`);
  url.pathname = `/${name}`;
  return { url: url.href, drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
