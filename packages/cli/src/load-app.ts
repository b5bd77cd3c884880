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
  let namespace: Record<string, unknown>;
  try {
    namespace = TYPESCRIPT.has(extname(path))
      ? // tsx is imported only for TypeScript: plain JavaScript apps never pay for the loader.
        await (await import("tsx/esm/api")).tsImport(url, import.meta.url)
      : await import(url);
  } catch (error) {
    throw new CliError(
      `could not load the app module ${specifier}: ${firstLine(error)} (fix the module; -v shows the stack)`,
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

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0]!;
}
