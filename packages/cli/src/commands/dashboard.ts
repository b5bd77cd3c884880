import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { UsageError } from "../errors.js";
import { importOptional } from "../load-app.js";
import type { Session } from "../session.js";
import { portOf } from "./metrics.js";

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
    dashboard = createDashboard(app, { basePath, actions, ...(token ? { token } : {}) });
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
