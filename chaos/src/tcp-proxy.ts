/**
 * A TCP proxy in front of the test server that can cut the network on demand: the
 * outage suite points workers at it to take the database away from some or all of them
 * while Postgres itself keeps running (and the suite keeps a direct connection to it).
 */
import { createServer, type Server, type Socket, connect } from "node:net";
import { withDatabase } from "./harness.js";

export interface TcpProxy {
  port: number;
  /** A URL of `database` on the server, through the proxy. */
  url(database: string, params?: Record<string, string>): string;
  /** Drop every open connection and refuse new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** A client's connection and the proxy's own to the server. */
interface Pair {
  client: Socket;
  upstream: Socket;
}

/** Listens on a spare 127.0.0.1 port and forwards to the host and port of `serverUrl`. */
export async function startTcpProxy(serverUrl: string): Promise<TcpProxy> {
  const target = new URL(serverUrl);
  const host = target.hostname || "127.0.0.1";
  const targetPort = Number(target.port || 5432);
  const pairs = new Set<Pair>();
  let isCut = false;

  const forget = (pair: Pair) => {
    pairs.delete(pair);
    pair.client.destroy();
    pair.upstream.destroy();
  };
  // A reset (RST), not a close (FIN): as with a failover or a dead route, the client gets
  // an error at once, not an end of stream it might take for an orderly close.
  const cutAll = () => {
    for (const pair of [...pairs]) {
      pair.client.resetAndDestroy();
      forget(pair);
    }
  };

  const server: Server = createServer((client) => {
    // While cut, a new connection fails as soon as it is made: clients see their
    // connect attempts fail quickly, as during a failover, rather than hang.
    if (isCut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, host);
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    // An orderly end is passed on by pipe(); a failure of either side takes the other
    // with it, as on a real link.
    for (const socket of [client, upstream]) {
      socket.on("error", () => forget(pair));
      socket.on("close", () => forget(pair));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    port,
    url(database, params = {}) {
      const u = new URL(withDatabase(serverUrl, database, params));
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    cut() {
      isCut = true;
      cutAll();
    },
    restore() {
      isCut = false;
    },
    async close() {
      isCut = true;
      cutAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
