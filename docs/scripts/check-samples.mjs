// Type-checks every TypeScript code block of the docs site.
//
// Sources: every docs/**/*.md page (but the generated api/), every markdown file a page
// includes with VitePress's `<!--@include: path-->` (package READMEs...), followed
// recursively, and the root README.md. Each ```ts / ```typescript block becomes a module in
// docs/.cache/samples/, and all of them are compiled with the repository's TypeScript
// (tsconfig.samples.json: strict, moduleResolution bundler, customConditions ["@proc/source"],
// so @proc/* resolve to the packages' sources).
//
// Markers, in an HTML comment on the lines right above a block (invisible once rendered):
//   <!-- no-check: reason -->          skip this block (a reason is required)
//   <!-- check-prelude: code -->       compile `code` first, e.g. `declare const app: App;`
//   <!-- check-prelude: @name -->      compile docs/scripts/preludes/name.ts first
// A block titled with a file name (```ts [app.ts]) is written under that name, so that later
// blocks of the same markdown file can import it (`import { app } from "./app.js"`).
//
// Every failing block fails the run, wherever its file lives (a README's sample is read on npm).
// Usage: node scripts/check-samples.mjs [--list]
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { DOCS, REPO } from "./packages.mjs";

const ts = createRequire(join(REPO, "package.json"))("typescript");
const OUT = join(DOCS, ".cache/samples");
const PRELUDES = join(DOCS, "scripts/preludes");
/** Markdown files checked even if no page includes them. */
const EXTRA_SOURCES = [join(REPO, "README.md")];
/** Directories of docs/ that hold no hand-written pages. */
const SKIP_DIRS = new Set(["node_modules", ".vitepress", ".cache", "api", "scripts"]);
const TS_LANGS = new Set(["ts", "typescript", "mts"]);

const started = performance.now();
const rel = (file) => relative(REPO, file);
const errors = []; // fatal problems that are not compiler diagnostics
const warnings = [];

/**
 * The README of an existing package that has none yet (a package being written): its page
 * stays empty, with a warning at every build, rather than failing everyone's build.
 * Any other missing include (a wrong path) is an error.
 */
function beingWritten(target) {
  const match = /^packages\/([^/]+)\/README\.md$/.exec(rel(target));
  return match !== null && existsSync(join(REPO, "packages", match[1], "package.json"));
}

// ---- 1. Markdown sources: pages, what they include, and the extras ------------------------

function pages(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) found.push(...pages(join(dir, entry.name)));
    } else if (entry.name.endsWith(".md") && !(dir === DOCS && entry.name === "README.md"))
      found.push(join(dir, entry.name)); // docs/README.md is not a page (srcExclude)
  }
  return found;
}

const sources = new Map(); // absolute path -> text
const queue = [...pages(DOCS), ...EXTRA_SOURCES];
while (queue.length) {
  const file = queue.shift();
  if (sources.has(file)) continue;
  const text = readFileSync(file, "utf8");
  sources.set(file, text);
  // The same syntax as VitePress (processIncludes): a path, then an optional #region or {a,b}.
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    for (const match of line.matchAll(/<!--\s*@include:\s*(.*?)\s*-->/g)) {
      const spec = match[1].replace(/(#[\w-]+)?(\{\d*,\d*\})?$/, "");
      const target = spec.startsWith("@")
        ? join(DOCS, spec.slice(spec[1] === "/" ? 2 : 1))
        : resolve(dirname(file), spec);
      if (existsSync(target)) queue.push(target);
      else if (beingWritten(target))
        warnings.push(
          `${rel(file)}:${i + 1}: ${rel(target)} does not exist yet: the page is empty until it does`,
        );
      else errors.push(`${rel(file)}:${i + 1}: included file ${spec} does not exist`);
    }
  });
}

// ---- 2. The TypeScript blocks --------------------------------------------------------------

/** @typedef {{ source: string, line: number, code: string, prelude: string, title: string | null, file?: string, preludeLines?: number }} Block */
/** @type {Block[]} */
const blocks = [];
let skipped = 0;

for (const [file, text] of sources) {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`{[]*)\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang, rest] = open;
    let end = i + 1;
    const closing = new RegExp(`^\\s*${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
    while (end < lines.length && !closing.test(lines[end])) end++;
    const body = lines.slice(i + 1, end).map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l));
    const start = i;
    i = end;
    if (!TS_LANGS.has(lang.toLowerCase())) continue;

    const markers = markersAbove(lines, start);
    const where = `${rel(file)}:${start + 1}`;
    const noCheck = markers.find((m) => m.kind === "no-check");
    if (noCheck) {
      if (!noCheck.value) errors.push(`${where}: <!-- no-check: --> needs a reason`);
      skipped++;
      continue;
    }
    const prelude = [];
    for (const m of markers.filter((m) => m.kind === "check-prelude")) {
      if (/^@[\w-]+$/.test(m.value)) {
        const path = join(PRELUDES, `${m.value.slice(1)}.ts`);
        if (!existsSync(path)) errors.push(`${where}: no prelude ${rel(path)}`);
        else prelude.push(readFileSync(path, "utf8").trimEnd());
      } else prelude.push(m.value);
    }
    const title = /\[([\w.-]+\.(?:ts|mts))\]/.exec(rest)?.[1] ?? null;
    blocks.push({ source: file, line: start + 2, code: body.join("\n"), prelude: prelude.join("\n"), title });
  }
}

/** HTML comments on the lines right above line `index` (blank lines allowed between). */
function markersAbove(lines, index) {
  const found = [];
  let j = index - 1;
  while (j >= 0) {
    if (lines[j].trim() === "") {
      j--;
      continue;
    }
    if (!lines[j].trimEnd().endsWith("-->")) break;
    let k = j;
    while (k >= 0 && !lines[k].includes("<!--")) k--;
    if (k < 0) break;
    const comment = lines.slice(k, j + 1).join("\n");
    const m = /<!--\s*(no-check|check-prelude)\s*:?([\s\S]*?)-->\s*$/.exec(comment);
    if (!m) break;
    found.unshift({ kind: m[1], value: m[2].trim() });
    j = k - 1;
  }
  return found;
}

// ---- 3. Write them as modules, with a node_modules that resolves @proc/* to the sources ----

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
linkModules();

const slug = (file) =>
  rel(file)
    .replace(/\.md$/i, "")
    .replace(/[^\w-]+/g, "_");
const taken = new Set();
for (const block of blocks) {
  const dir = join(OUT, slug(block.source));
  mkdirSync(dir, { recursive: true });
  let name = block.title ?? `L${block.line}.ts`;
  if (taken.has(join(dir, name))) name = `L${block.line}-${name}`;
  block.file = join(dir, name);
  taken.add(block.file);
  block.preludeLines = block.prelude ? block.prelude.split("\n").length : 0;
  writeFileSync(block.file, `${block.prelude ? `${block.prelude}\n` : ""}${block.code}\n`);
}

function linkModules() {
  const nm = join(OUT, "node_modules");
  const link = (name, target) => {
    const path = join(nm, name);
    mkdirSync(dirname(path), { recursive: true });
    symlinkSync(target, path, "dir");
  };
  // Every workspace package named @proc/*: resolved through its exports' "@proc/source" condition.
  for (const dir of readdirSync(join(REPO, "packages"))) {
    const pkg = join(REPO, "packages", dir, "package.json");
    if (!existsSync(pkg)) continue;
    const { name } = JSON.parse(readFileSync(pkg, "utf8"));
    if (name?.startsWith("@proc/")) link(name, join(REPO, "packages", dir));
  }
  // Drivers a user's code imports next to proc, taken from the connectors that depend on them.
  for (const [name, from] of [
    ["pg", "pg-connector"],
    ["@types/pg", "pg-connector"],
    ["@electric-sql/pglite", "pglite-connector"],
  ]) {
    const path = join(REPO, "packages", from, "node_modules", name);
    if (existsSync(path)) link(name, realpathSync(path));
  }
}

// ---- 4. Compile ---------------------------------------------------------------------------

const configPath = join(DOCS, "tsconfig.samples.json");
const parsed = ts.parseJsonConfigFileContent(
  ts.readConfigFile(configPath, ts.sys.readFile).config,
  ts.sys,
  DOCS,
);
if (parsed.errors.length) {
  console.error(ts.formatDiagnostics(parsed.errors, formatHost()));
  process.exit(1);
}
const options = { ...parsed.options, noEmit: true };
// A block that augments a module (declare module "...") changes types for every file of its
// program: compile those alone.
const alone = blocks.filter((b) => /^\s*declare\s+module\s/m.test(b.code));
const shared = blocks.filter((b) => !alone.includes(b));
const diagnostics = [];
for (const group of [shared, ...alone.map((b) => [b])]) {
  if (!group.length) continue;
  const program = ts.createProgram({ rootNames: group.map((b) => b.file), options });
  diagnostics.push(...ts.getPreEmitDiagnostics(program));
}

// ---- 5. Report ----------------------------------------------------------------------------

const byFile = new Map(blocks.map((b) => [b.file, b]));
const failures = new Map(); // block -> messages
const other = [];
for (const d of diagnostics) {
  const message = ts.flattenDiagnosticMessageText(d.messageText, "\n  ");
  const block = d.file && byFile.get(d.file.fileName);
  if (!block) {
    other.push(
      d.file ? `${rel(d.file.fileName)}: error TS${d.code}: ${message}` : `error TS${d.code}: ${message}`,
    );
    continue;
  }
  const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
  const inPrelude = line < block.preludeLines;
  const at = inPrelude
    ? `${rel(block.source)}:${block.line - 1} (prelude line ${line + 1})`
    : `${rel(block.source)}:${block.line + line - block.preludeLines}:${character + 1}`;
  const list = failures.get(block) ?? [];
  list.push(`${at} error TS${d.code}: ${message}`);
  failures.set(block, list);
}

if (process.argv.includes("--list"))
  for (const b of blocks) console.log(`${rel(b.source)}:${b.line - 1} -> ${rel(b.file)}`);

for (const message of warnings) console.warn(`[samples] warning: ${message}`);
for (const message of errors) console.error(`[samples] error: ${message}`);
for (const message of other) console.error(`[samples] error outside the samples: ${message}`);
for (const messages of failures.values()) console.error(`[samples] error:\n  ${messages.join("\n  ")}`);

const ms = Math.round(performance.now() - started);
const summary = `${blocks.length} TypeScript blocks from ${new Set(blocks.map((b) => b.source)).size} files compiled, ${skipped} skipped (no-check), ${failures.size} failing in ${ms} ms`;
if (errors.length || other.length || failures.size) {
  console.error(`[samples] FAILED: ${summary}`);
  process.exit(1);
}
console.log(`[samples] ok: ${summary}`);

function formatHost() {
  return { getCanonicalFileName: (f) => f, getCurrentDirectory: () => DOCS, getNewLine: () => "\n" };
}
