import { consoleLogger, isProcError, redact } from "@proc/core";
import packageJson from "../package.json" with { type: "json" };
import { type Env, type Values, parse } from "./args.js";
import { dashboardCommand } from "./commands/dashboard.js";
import { defer } from "./commands/defer.js";
import { healthcheck, queues, queuesPause, queuesResume, stalled, workers } from "./commands/inspect.js";
import { jobsCancel, jobsList, jobsRetry, jobsShow } from "./commands/jobs.js";
import { limits, queuesLimit } from "./commands/limits.js";
import { metricsCommand } from "./commands/metrics.js";
import { schemaApply, schemaSql, schemaStatus } from "./commands/schema.js";
import { worker } from "./commands/worker.js";
import { CliError, UsageError } from "./errors.js";
import { helpText, usageLine } from "./help.js";
import { Printer, type Stream } from "./output.js";
import { Session } from "./session.js";

export interface MainOptions {
  /** @defaultValue process.env */
  env?: Env;
  /** Where --app paths are resolved from. @defaultValue process.cwd() */
  cwd?: string;
  /** @defaultValue process.stdout */
  stdout?: Stream;
  /** Errors and logs. @defaultValue process.stderr */
  stderr?: Stream;
}

const RUN: Record<string, (s: Session) => Promise<number>> = {
  worker,
  defer,
  "schema apply": schemaApply,
  "schema status": schemaStatus,
  "schema sql": schemaSql,
  "jobs list": jobsList,
  "jobs show": jobsShow,
  "jobs retry": jobsRetry,
  "jobs cancel": jobsCancel,
  queues,
  "queues pause": queuesPause,
  "queues resume": queuesResume,
  "queues limit": queuesLimit,
  limits,
  workers,
  stalled,
  healthcheck,
  metrics: metricsCommand,
  dashboard: dashboardCommand,
};

/**
 * Run `proc` with these arguments (without "node" and the script) and resolve with the
 * exit code: 0 ok, 1 an error the message explains, 2 a usage error. Never calls
 * process.exit, so it can be embedded.
 */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  // Colour decisions need the flags, which may be malformed: start plain.
  let err = new Printer(stderr, true);
  let verbose = false;
  let command: readonly string[] | null = null;
  let session: Session | null = null;
  try {
    const parsed = parse(argv, env);
    if (parsed.kind === "version") {
      stdout.write(`${packageJson.version}\n`);
      return 0;
    }
    if (parsed.kind === "help") {
      stdout.write(`${helpText(parsed.path)}\n`);
      return 0;
    }
    command = parsed.command.path;
    const { values } = parsed;
    verbose = values.bool("verbose");
    const noColor = values.bool("no-color");
    err = new Printer(stderr, noColor);
    session = new Session({
      command,
      values,
      positionals: parsed.positionals,
      out: new Printer(stdout, noColor),
      err,
      logger: consoleLogger({
        level: verbose ? "debug" : values.bool("quiet") ? "warn" : "info",
        format: logFormat(values, stderr),
        write: (line) => stderr.write(`${line}\n`),
      }),
      env,
      cwd: options.cwd ?? process.cwd(),
    });
    return await RUN[command.join(" ")]!(session);
  } catch (error) {
    return report(error, err, verbose, command);
  } finally {
    await session?.close().catch(() => {});
  }
}

function logFormat(values: Values, stderr: Stream): "json" | "pretty" {
  // Terminals get readable lines; anything else (a file, a log collector) gets JSON lines.
  return values.choice("log-format", ["json", "pretty"] as const) ?? (stderr.isTTY ? "pretty" : "json");
}

/** The one place errors become exit codes and messages. */
function report(error: unknown, err: Printer, verbose: boolean, command: readonly string[] | null): number {
  const label = err.paint("error:", "red");
  if (error instanceof UsageError) {
    const path = error.command ?? command ?? [];
    err.line(`${label} ${error.message}`);
    err.line(usageLine(path));
    err.line(`run \`proc ${[...path, "--help"].join(" ")}\` for more`);
    return 2;
  }
  const message = error instanceof Error ? error.message : String(error);
  // One line: multi-line messages (InvalidOptions lists problems) are joined.
  err.line(
    `${label} ${redact(
      message
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean)
        .join(" "),
    )}`,
  );
  const known = error instanceof CliError || isProcError(error);
  if (verbose) {
    const cause = error instanceof CliError && error.cause instanceof Error ? error.cause : error;
    if (cause instanceof Error && cause.stack) err.line(redact(cause.stack));
  } else if (!known) err.line("(run with -v for the stack trace)");
  return 1;
}
