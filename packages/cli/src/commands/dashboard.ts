import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { DashboardOptions } from "@proc/dashboard";
import { UsageError } from "../errors.js";
import { importOptional } from "../load-app.js";
import type { Session } from "../session.js";
import { portOf } from "./metrics.js";

type PeriodicSchedule = NonNullable<DashboardOptions["periodic"]>[number];

/**
 * Only the app's code knows its schedules' cron expressions: the handles `app.periodic()`
 * returns, which the module exports (one by one, in an array or in an object). They are
 * recognised by shape, as the app is (the module may hold its own copy of @proc/scheduler, and
 * neither the CLI nor the dashboard depends on it), so that the periodic tasks page shows
 * what `createDashboard(app, { periodic })` would.
 */
export function periodicHandles(exports: Readonly<Record<string, unknown>>): PeriodicSchedule[] {
  const found = new Set<PeriodicSchedule>();
  const visit = (value: unknown, depth: number) => {
    if (isPeriodicHandle(value)) found.add(value);
    else if (Array.isArray(value)) for (const item of value) visit(item, depth);
    // The default export of a CommonJS module (or an object of handles): one level down.
    else if (depth === 0 && value !== null && typeof value === "object" && !isPromiseLike(value))
      for (const item of Object.values(value)) visit(item, depth + 1);
  };
  for (const value of Object.values(exports)) visit(value, 0);
  return [...found];
}

function isPeriodicHandle(value: unknown): value is PeriodicSchedule {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.taskName === "string" &&
    typeof v.periodicId === "string" &&
    typeof v.cron === "string" &&
    typeof v.timezone === "string" &&
    typeof v.nextTick === "function"
  );
}

const isPromiseLike = (value: object) => typeof (value as { then?: unknown }).then === "function";

/** `proc dashboard`: the web dashboard until SIGINT/SIGTERM; 127.0.0.1 and read-only unless told. */
export async function dashboardCommand(s: Session): Promise<number> {
  const port = portOf(s, "port") ?? 8080;
  const host = s.values.string("host") ?? "127.0.0.1";
  const basePath = s.values.string("base-path") ?? "/";
  const actions = s.values.bool("actions");
  const token = s.values.string("token");
  if (actions && !token)
    throw new UsageError(
      "--actions needs --token (or PROC_DASHBOARD_TOKEN): anyone who can reach the dashboard could act otherwise",
      s.command,
    );
  const { createDashboard, nodeListener } = await importOptional<typeof import("@proc/dashboard")>(
    "@proc/dashboard",
    "proc dashboard needs @proc/dashboard: npm install @proc/dashboard",
  );
  const app = await s.open("database");
  let dashboard: ReturnType<typeof createDashboard>;
  try {
    dashboard = createDashboard(app, {
      basePath,
      actions,
      ...(token ? { token } : {}),
      periodic: periodicHandles(s.moduleExports),
    });
  } catch (error) {
    throw new UsageError((error as Error).message, s.command);
  }
  const listener = nodeListener(dashboard);
  const server = createServer((request, response) => void listener(request, response));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}${dashboard.basePath || "/"}`;
  s.logger.info(
    { action: "dashboard_listening", url, actions },
    `serving the dashboard at ${url} (${actions ? "actions enabled" : "read-only"})`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await dashboard.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  return 0;
}
