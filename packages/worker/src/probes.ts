import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "@proc/core";

/** Where a worker serves its health probes, `/livez` and `/readyz` (the `probes` worker option). */
export interface ProbesOptions {
  /** TCP port; 0 picks a free one (read it from `worker.probesAddress`). */
  port: number;
  /**
   * Interface to listen on. Loopback by default, so that nothing is exposed unless asked; in
   * a Kubernetes pod the kubelet probes the pod's IP, so set "0.0.0.0" (or "::") there.
   * @defaultValue "127.0.0.1"
   */
  host?: string;
}

export const PROBES_DEFAULT_HOST = "127.0.0.1";

/** What is wrong with a `probes` option, for the worker's one InvalidOptions. */
export function probesProblems(probes: unknown): string[] {
  if (probes == null) return [];
  if (typeof probes !== "object" || Array.isArray(probes))
    return ["probes: expected { port, host? } (omit it to serve no health probes)"];
  const { port, host } = probes as Record<string, unknown>;
  const problems: string[] = [];
  if (!(Number.isInteger(port) && (port as number) >= 0 && (port as number) <= 65_535))
    problems.push(`probes.port: expected an integer from 0 (any free port) to 65535 (got ${String(port)})`);
  if (host !== undefined && (typeof host !== "string" || host.length === 0))
    problems.push(
      `probes.host: expected a non-empty host or IP address, e.g. "0.0.0.0" (got ${String(host)})`,
    );
  return problems;
}

/** One check of a probe. */
export interface HealthCheck {
  status: "ok" | "fail";
  /** Why it fails, or why it does not apply right now. */
  message?: string;
  /** Loops: ms since the loop last came round, and the most it may be before the worker counts as stuck. */
  sinceMs?: number;
  limitMs?: number;
}

/** The body of `/livez` or `/readyz`: `status` is "fail" (HTTP 503) when any check fails. */
export interface HealthReport {
  status: "ok" | "fail";
  checks: Record<string, HealthCheck>;
}

export interface WorkerHealth {
  /** `/livez`: the worker's loops come round (checks `fetchLoop`, `heartbeatLoop`). */
  live: HealthReport;
  /** `/readyz`: running and registered, heard by the database, schema current (checks `state`, `database`, `schema`). */
  ready: HealthReport;
}

/** The readings of a worker that its health is judged on. Times are performance.now(). */
export interface WorkerVitals {
  state: string;
  registered: boolean;
  /** checkSchema passed when the worker started. */
  schemaCurrent: boolean;
  /** A heartbeat failed and none got through since: the worker fetches and starts nothing. */
  beatOwed: boolean;
  /** When each loop last came round (or the worker started, before it has). */
  fetchLoopAt: number;
  heartbeatLoopAt: number;
  pollInterval: number;
  heartbeatInterval: number;
  /** The longest the fetch loop waits between retries of a failed fetch. */
  fetchBackoffMaxMs: number;
  now: number;
}

/**
 * Room for the queries of one loop iteration, on top of twice the loop's longest wait: the
 * PgConnector gives up a connection attempt after 10 s, so a loop that reconnects to an
 * unreachable database still comes round within this; only a loop stuck on something that
 * never settles does not.
 */
const QUERY_ALLOWANCE_MS = 10_000;

/**
 * Liveness: each of the worker's loops came round recently, while it is meant to run (the
 * fetch loop while running; the heartbeat loop while running and draining, since it beats
 * until the worker stops). A loop's longest legitimate wait is its period: pollInterval for
 * the fetch loop (or its retry backoff, up to `fetchBackoffMaxMs`), heartbeatInterval for the
 * heartbeat loop. It is stuck once it has not come round for twice that plus
 * QUERY_ALLOWANCE_MS. The event loop needs no check: a blocked one cannot answer at all.
 *
 * Readiness: running and registered (it flips the moment a stop begins, since the state is
 * what the fetch loop stops on), no heartbeat owed, and the schema was current at start.
 */
export function workerHealth(v: WorkerVitals): WorkerHealth {
  const loop = (name: string, at: number, period: number, runs: boolean): HealthCheck => {
    if (!runs) return { status: "ok", message: `not running (the worker is ${v.state})` };
    const sinceMs = Math.max(0, Math.round(v.now - at));
    const limitMs = 2 * period + QUERY_ALLOWANCE_MS;
    return sinceMs <= limitMs
      ? { status: "ok", sinceMs, limitMs }
      : {
          status: "fail",
          sinceMs,
          limitMs,
          message: `the ${name} has not come round for ${sinceMs} ms (limit ${limitMs} ms): it is stuck`,
        };
  };
  const live = report({
    fetchLoop: loop(
      "fetch loop",
      v.fetchLoopAt,
      Math.max(v.pollInterval, v.fetchBackoffMaxMs),
      v.state === "running",
    ),
    heartbeatLoop: loop(
      "heartbeat loop",
      v.heartbeatLoopAt,
      v.heartbeatInterval,
      v.state === "running" || v.state === "draining",
    ),
  });
  const state: HealthCheck =
    v.state === "running"
      ? v.registered
        ? { status: "ok" }
        : { status: "fail", message: "starting: the worker is not registered yet" }
      : v.state === "idle"
        ? { status: "fail", message: "not started" }
        : { status: "fail", message: `shutting down (${v.state}): no new jobs are fetched` };
  const ready = report({
    state,
    database: v.beatOwed
      ? {
          status: "fail",
          message: "a heartbeat failed: no job is fetched or started until one gets through",
        }
      : { status: "ok" },
    schema: v.schemaCurrent
      ? { status: "ok" }
      : { status: "fail", message: "not checked yet (the worker checks it when it starts)" },
  });
  return { live, ready };
}

function report(checks: Record<string, HealthCheck>): HealthReport {
  const ok = Object.values(checks).every((c) => c.status === "ok");
  return { status: ok ? "ok" : "fail", checks };
}

/** The HTTP server of the probes: node:http, GET and HEAD of `/livez` and `/readyz`. */
export class ProbeServer {
  readonly #server: Server;
  #address: AddressInfo | null;

  private constructor(server: Server, address: AddressInfo) {
    this.#server = server;
    this.#address = address;
  }

  /** Listen; rejects (with the address in the message) when the port cannot be bound. */
  static async start(
    options: Required<ProbesOptions>,
    health: () => WorkerHealth,
    logger: Logger,
  ): Promise<ProbeServer> {
    const server = createServer((req, res) => answer(req, res, health));
    const { host, port } = options;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      throw new Error(
        `could not serve the health probes on ${host}:${port}: ${(error as Error).message}; ` +
          "choose another probes.port (0 picks a free one)",
        { cause: error },
      );
    }
    server.on("error", (error) =>
      logger.error({ action: "probes_error", error }, "the health probes server failed"),
    );
    const address = server.address() as AddressInfo;
    logger.info(
      { action: "probes_listening", host: address.address, port: address.port },
      `health probes on http://${host}:${address.port}/livez and /readyz`,
    );
    return new ProbeServer(server, address);
  }

  /** Where it listens; null once closed. */
  get address(): AddressInfo | null {
    return this.#address;
  }

  /** Stop listening and drop open (keep-alive) connections. Idempotent. */
  async close(): Promise<void> {
    if (!this.#address) return;
    this.#address = null;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

function answer(req: IncomingMessage, res: ServerResponse, health: () => WorkerHealth): void {
  const path = (req.url ?? "/").split("?", 1)[0];
  const probe = path === "/livez" ? "live" : path === "/readyz" ? "ready" : null;
  if (!probe) {
    send(req, res, 404, { status: "fail", error: "not found: the probes are /livez and /readyz" });
  } else if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    send(req, res, 405, { status: "fail", error: "method not allowed: use GET or HEAD" });
  } else {
    const body = health()[probe];
    send(req, res, body.status === "ok" ? 200 : 503, body);
  }
}

function send(req: IncomingMessage, res: ServerResponse, code: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : text);
}
