/**
 * A structured logger interface that pino satisfies: `logger.info({ action, ... }, "message")`.
 * Every proc log line carries an `action` (start_worker, job_success, job_error_retry, ...).
 */
export interface Logger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
  /**
   * Whether lines of `level` are written (pino has it). Optional: when present, proc
   * skips building the fields and message of per-job lines that would be dropped.
   */
  isLevelEnabled?(level: "debug" | "info" | "warn" | "error"): boolean;
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: 100 };

export interface ConsoleLoggerOptions {
  /** @defaultValue "info" */
  level?: LogLevel;
  /** "json": one JSON object per line; "pretty": readable lines. @defaultValue "pretty" */
  format?: "json" | "pretty";
  /** Where lines go. @defaultValue process.stderr */
  write?: (line: string) => void;
  bindings?: Record<string, unknown>;
}

/** A small logger writing to stderr, for apps without pino. */
export function consoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const min = LEVELS[options.level ?? "info"];
  const format = options.format ?? "pretty";
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const bindings = options.bindings ?? {};
  const log = (level: Exclude<LogLevel, "silent">) => (obj: Record<string, unknown>, msg?: string) => {
    if (LEVELS[level] < min) return;
    const fields = { ...bindings, ...obj };
    if (format === "json") {
      write(JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields }, errorReplacer));
    } else {
      const extra = Object.entries(fields)
        .filter(([k]) => k !== "action")
        .map(
          ([k, v]) =>
            `${k}=${typeof v === "string" ? v : v instanceof Error ? `${v.name}: ${v.message}` : JSON.stringify(v, errorReplacer)}`,
        )
        .join(" ");
      const action = fields.action ? `[${String(fields.action)}] ` : "";
      write(
        `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${action}${msg ?? ""}${extra ? ` ${extra}` : ""}`,
      );
    }
  };
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    child: (more) => consoleLogger({ ...options, bindings: { ...bindings, ...more } }),
    isLevelEnabled: (level) => LEVELS[level] >= min,
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}

const noop = () => {};
/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
  isLevelEnabled: () => false,
};
