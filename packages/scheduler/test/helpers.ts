import type { App, Logger } from "@proc/core";

export interface LogRecord {
  level: "debug" | "info" | "warn" | "error";
  action: unknown;
  fields: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger that remembers every line, to assert on actions. */
export function recordingLogger(records: LogRecord[] = []): Logger & { records: LogRecord[] } {
  const at =
    (level: LogRecord["level"]) =>
    (fields: Record<string, unknown>, msg?: string): void => {
      records.push({ level, action: fields.action, fields, msg });
    };
  const logger = {
    records,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

/** Run one of the app's worker services as a worker would, until stop(). */
export function startService(app: App, name: string, logger: Logger, workerId = 1) {
  const service = app.workerServices.find((s) => s.name === name);
  if (!service) throw new Error(`no worker service named ${name}`);
  const controller = new AbortController();
  const done = service.run({
    app,
    signal: controller.signal,
    logger,
    workerId,
    workerName: `test-${workerId}`,
    queues: null,
  });
  return {
    async stop(): Promise<void> {
      controller.abort();
      await done;
    },
  };
}
