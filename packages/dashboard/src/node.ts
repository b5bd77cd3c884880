import type { IncomingMessage, ServerResponse } from "node:http";
import { getRequestListener } from "@hono/node-server";

/**
 * A node:http request listener for a fetch handler (the dashboard): `createServer(nodeListener(dashboard))`,
 * or call it from your own listener for the requests under the dashboard's base path.
 */
export function nodeListener(
  handler: (request: Request) => Promise<Response>,
): (request: IncomingMessage, response: ServerResponse) => Promise<void> {
  return getRequestListener(handler);
}
