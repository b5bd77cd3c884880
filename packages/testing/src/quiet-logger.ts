import type { Logger } from "@proc/core";

/**
 * `logger`, keeping only warnings and errors: a test's output then shows a task that
 * threw or a job retried, not every worker start and job success.
 */
export function quietLogger(logger: Logger): Logger {
  return {
    debug: () => {},
    info: () => {},
    warn: (obj, msg) => logger.warn(obj, msg),
    error: (obj, msg) => logger.error(obj, msg),
    child: (bindings) => quietLogger(logger.child(bindings)),
    isLevelEnabled: (level) =>
      (level === "warn" || level === "error") && (logger.isLevelEnabled?.(level) ?? true),
  };
}
