import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { App } from "@proc/core";
import { CliError } from "./errors.js";

const TYPESCRIPT = new Set([".ts", ".mts", ".cts", ".tsx"]);

/**
 * Recognised by shape, not `instanceof`: the user's module may import its own copy of
 * @proc/core (another version in its node_modules) whose App class is not ours.
 */
export function isApp(value: unknown): value is App {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.open === "function" &&
    typeof v.configureTask === "function" &&
    typeof v.migrate === "function" &&
    typeof v.jobManager === "object" &&
    v.jobManager !== null
  );
}

/** Import the user's module (a file path, relative to `cwd`) and return its app. */
export async function loadApp(specifier: string, cwd: string): Promise<App> {
  const path = resolve(cwd, specifier);
  if (!existsSync(path))
    throw new CliError(
      `cannot find the app module ${specifier} (looked for ${path}); pass --app a path to the .js, .mjs, .cjs or .ts file that exports your app`,
    );
  const url = pathToFileURL(path).href;
  const typescript = TYPESCRIPT.has(extname(path));
  // tsx is imported only for TypeScript: plain JavaScript apps never pay for the loader, and it
  // is an optional peer of @proc/cli (esbuild alone is 11 MB).
  const tsx = typescript
    ? await importOptional<typeof import("tsx/esm/api")>(
        "tsx/esm/api",
        `loading the TypeScript app module ${specifier} needs tsx: npm install --save-dev tsx (or compile the app and pass the .js file)`,
      )
    : null;
  let namespace: Record<string, unknown>;
  try {
    namespace = tsx ? await tsx.tsImport(url, import.meta.url) : await import(url);
  } catch (error) {
    throw new CliError(
      `could not load the app module ${specifier}: ${describeLoadError(error, path)} (fix the module; -v shows the stack)`,
      { cause: error },
    );
  }
  return pickApp(namespace, specifier);
}

function pickApp(namespace: Record<string, unknown>, specifier: string): App {
  const fallback = namespace.default as Record<string, unknown> | undefined;
  // A CommonJS module's exports arrive as the default export; its names may not be detected statically.
  for (const candidate of [namespace.app, fallback, fallback?.app]) if (isApp(candidate)) return candidate;
  const names = Object.keys(namespace).filter((k) => namespace[k] !== undefined);
  const exported = names.length
    ? `it exports ${names.map(describeExport(namespace)).join(", ")}`
    : "it exports nothing";
  throw new CliError(
    `the app module ${specifier} has no proc App as \`app\` or default export (${exported}); add \`export const app = new App({ connector })\``,
  );
}

const describeExport = (namespace: Record<string, unknown>) => (name: string) => {
  const value = namespace[name];
  const kind =
    typeof value === "function"
      ? "function"
      : value === null
        ? "null"
        : Array.isArray(value)
          ? "array"
          : typeof value;
  return `${name} (${kind})`;
};

/**
 * Import a package the CLI can run without (an optional peer dependency). When it is missing,
 * fail with `missingMessage`, which names the package to install; any other failure is a bug.
 */
export async function importOptional<T>(specifier: string, missingMessage: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if ((code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && mentions(error, specifier))
      throw new CliError(missingMessage, { cause: error });
    throw error;
  }
}

const mentions = (error: unknown, specifier: string): boolean => {
  const packageName = specifier.startsWith("@")
    ? specifier.split("/").slice(0, 2).join("/")
    : specifier.split("/")[0]!;
  return error instanceof Error && error.message.includes(packageName);
};

/**
 * One line saying what went wrong, with file:line:column for a syntax error, so the user can
 * jump to it without -v. esbuild (behind tsx) puts locations in its message; Node does not put
 * the location of a JavaScript module's syntax error anywhere in the error, so `node --check`
 * (a separate process, paid only on this failure path) reads it again.
 */
export function describeLoadError(error: unknown, path: string): string {
  const located = esbuildLocation(error);
  if (located) return located;
  if (error instanceof SyntaxError) {
    const where = checkSyntax(path);
    if (where) return `${where}: ${error.message}`;
  }
  return firstLine(error);
}

/**
 * tsx reports an esbuild transform failure as one message whose later lines read
 * `<file>:<line>:<column>: ERROR: <text>`, with esbuild's columns counted from 0.
 */
function esbuildLocation(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  const match = /^(.+?):(\d+):(\d+): ERROR: (.*)$/m.exec(error.message);
  if (!match) return null;
  const [, file, line, column, text] = match;
  return `${file}:${line}:${Number(column) + 1}: ${text}`;
}

/** `file:line:column` of the first syntax error `node --check` finds in `path`, or null. */
function checkSyntax(path: string): string | null {
  const run = spawnSync(process.execPath, ["--check", path], { encoding: "utf8", timeout: 10_000 });
  if (run.status === 0 || typeof run.stderr !== "string") return null;
  // node --check prints "<file>:<line>", the source line, then a caret under the column.
  const lines = run.stderr.split("\n");
  const at = lines.findIndex((line) => line.startsWith(`${path}:`));
  if (at < 0) return null;
  const caret = lines[at + 2]?.indexOf("^") ?? -1;
  return caret >= 0 ? `${lines[at]}:${caret + 1}` : lines[at]!;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0]!;
}
