// Health probes (`probes` option): /livez and /readyz for orchestrators. Readiness flips
// on the first SIGINT/SIGTERM before the worker stops fetching; liveness holds while it
// drains and while the database is away.
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { App, InvalidOptions, type Job, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import {
  type TestApp,
  type TestDatabase,
  backends,
  createTestApp,
  createTestDatabase,
  pgUrl,
  waitFor,
  withDatabase,
} from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type HealthReport, Worker, type WorkerOptions } from "../src/index.js";
import { resolveWorkerOptions } from "../src/options.js";
import { type WorkerVitals, workerHealth } from "../src/probes.js";

interface ProbeAnswer {
  status: number;
  headers: Headers;
  text: string;
  body: HealthReport & { error?: string };
}

async function probe(port: number, path: string, method = "GET"): Promise<ProbeAnswer> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? JSON.parse(text) : null };
}

const problemsOf = (options: WorkerOptions): readonly string[] => {
  try {
    resolveWorkerOptions(options);
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptions);
    return (error as InvalidOptions).problems;
  }
};

describe("the probes option", () => {
  it("is off by default; host defaults to loopback", () => {
    expect(resolveWorkerOptions({}).probes).toBeNull();
    expect(resolveWorkerOptions({ probes: { port: 0 } }).probes).toEqual({ port: 0, host: "127.0.0.1" });
    expect(resolveWorkerOptions({ probes: { port: 9464, host: "0.0.0.0" } }).probes).toEqual({
      port: 9464,
      host: "0.0.0.0",
    });
  });

  it.each([-1, 65_536, 1.5, Number.NaN, "8080", undefined])("refuses port %s", (port) => {
    expect(problemsOf({ probes: { port } as never })).toEqual([
      `probes.port: expected an integer from 0 (any free port) to 65535 (got ${String(port)})`,
    ]);
  });

  it("refuses a bad host, or probes that are not an object", () => {
    expect(problemsOf({ probes: { port: 0, host: "" } })).toEqual([
      'probes.host: expected a non-empty host or IP address, e.g. "0.0.0.0" (got )',
    ]);
    expect(problemsOf({ probes: 8080 as never })).toEqual([
      "probes: expected { port, host? } (omit it to serve no health probes)",
    ]);
  });

  it("is reported in the one error that names every bad option", () => {
    expect(problemsOf({ concurrency: 0, probes: { port: -1, host: 7 as never } })).toEqual([
      "concurrency: expected a positive integer (got 0)",
      "probes.port: expected an integer from 0 (any free port) to 65535 (got -1)",
      'probes.host: expected a non-empty host or IP address, e.g. "0.0.0.0" (got 7)',
    ]);
  });
});

describe("workerHealth (the judgement, from readings)", () => {
  const vitals = (over: Partial<WorkerVitals> = {}): WorkerVitals => ({
    state: "running",
    registered: true,
    schemaCurrent: true,
    beatOwed: false,
    fetchLoopAt: 1000,
    heartbeatLoopAt: 1000,
    pollInterval: 5000,
    heartbeatInterval: 5000,
    fetchBackoffMaxMs: 10_000,
    now: 1000,
    ...over,
  });
  const failing = (report: HealthReport) =>
    Object.entries(report.checks)
      .filter(([, c]) => c.status === "fail")
      .map(([name]) => name);

  it("a running worker whose loops came round is live and ready", () => {
    const { live, ready } = workerHealth(vitals({ now: 5000 }));
    expect(live).toEqual({
      status: "ok",
      checks: {
        fetchLoop: { status: "ok", sinceMs: 4000, limitMs: 30_000 },
        heartbeatLoop: { status: "ok", sinceMs: 4000, limitMs: 20_000 },
      },
    });
    expect(ready).toEqual({
      status: "ok",
      checks: { state: { status: "ok" }, database: { status: "ok" }, schema: { status: "ok" } },
    });
  });

  it("a loop is stuck after twice its longest wait plus 10 s", () => {
    // Fetch: max(pollInterval, the 10 s retry backoff); heartbeat: heartbeatInterval.
    expect(failing(workerHealth(vitals({ now: 1000 + 30_000 })).live)).toEqual(["heartbeatLoop"]);
    expect(failing(workerHealth(vitals({ now: 1000 + 30_001, heartbeatLoopAt: 30_000 })).live)).toEqual([
      "fetchLoop",
    ]);
    const slowPoll = workerHealth(
      vitals({ pollInterval: 60_000, now: 1000 + 100_000, heartbeatLoopAt: 100_000 }),
    );
    expect(slowPoll.live.status).toBe("ok");
    expect(slowPoll.live.checks.fetchLoop!.limitMs).toBe(130_000);
    const stuck = workerHealth(vitals({ now: 1000 + 45_000 })).live;
    expect(stuck.status).toBe("fail");
    expect(stuck.checks.fetchLoop).toEqual({
      status: "fail",
      sinceMs: 45_000,
      limitMs: 30_000,
      message: "the fetch loop has not come round for 45000 ms (limit 30000 ms): it is stuck",
    });
  });

  it("a draining worker is live (its fetch loop has stopped by design) but not ready", () => {
    const { live, ready } = workerHealth(vitals({ state: "draining", fetchLoopAt: 0, now: 10_000 }));
    expect(live.status).toBe("ok");
    expect(live.checks.fetchLoop).toEqual({ status: "ok", message: "not running (the worker is draining)" });
    expect(live.checks.heartbeatLoop!.status).toBe("ok");
    expect(failing(ready)).toEqual(["state"]);
    expect(ready.checks.state!.message).toBe("shutting down (draining): no new jobs are fetched");
    // Its heartbeat loop still beats, and is still judged.
    expect(failing(workerHealth(vitals({ state: "draining", now: 60_000 })).live)).toEqual(["heartbeatLoop"]);
  });

  it("names the failing readiness check", () => {
    expect(failing(workerHealth(vitals({ beatOwed: true })).ready)).toEqual(["database"]);
    expect(failing(workerHealth(vitals({ registered: false, schemaCurrent: false })).ready)).toEqual([
      "state",
      "schema",
    ]);
    expect(failing(workerHealth(vitals({ state: "idle" })).ready)).toEqual(["state"]);
  });
});

describe.each(backends())("health probes on %s", (backend) => {
  let t: TestApp;
  let app: App;
  const workers: Worker[] = [];

  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stopNow()));
    await t.dispose();
  });

  async function startWorker(options: WorkerOptions = {}): Promise<{ worker: Worker; port: number }> {
    const worker = new Worker(app, {
      handleSignals: false,
      pollInterval: 100,
      heartbeatInterval: 200,
      probes: { port: 0 },
      ...options,
    });
    workers.push(worker);
    void worker.run();
    await waitFor(() => worker.id !== null && worker.health().ready.status === "ok", {
      what: "worker ready",
    });
    return { worker, port: worker.probesAddress!.port };
  }

  /** A task whose runs wait until the test opens the gate. */
  function gatedTask() {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const task = app.task({ name: "gated" }, async () => {
      await gate;
      return "done";
    });
    return { task, open };
  }

  it("answers 200 on /livez and /readyz while running, 404 elsewhere, GET and HEAD only", async () => {
    const { port } = await startWorker();
    const live = await probe(port, "/livez");
    expect(live.status).toBe(200);
    expect(live.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(live.headers.get("cache-control")).toBe("no-store");
    expect(live.body).toMatchObject({
      status: "ok",
      checks: { fetchLoop: { status: "ok" }, heartbeatLoop: { status: "ok" } },
    });
    const ready = await probe(port, "/readyz?verbose");
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      status: "ok",
      checks: { state: { status: "ok" }, database: { status: "ok" }, schema: { status: "ok" } },
    });
    const head = await probe(port, "/readyz", "HEAD");
    expect([head.status, head.text]).toEqual([200, ""]);

    for (const path of ["/", "/healthz", "/livez/", "/readyz/x"]) {
      const missing = await probe(port, path);
      expect([path, missing.status, missing.body.status]).toEqual([path, 404, "fail"]);
    }
    const post = await probe(port, "/livez", "POST");
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  it("stop(): /readyz turns 503 at once while jobs drain, /livez stays 200; closed once stopped", async () => {
    const { task, open } = gatedTask();
    const { worker, port } = await startWorker();
    const id = await task.defer({});
    await waitFor(() => worker.runningJobs.length === 1, { what: "job running" });

    const stopped = worker.stop();
    // Synchronously: the fetch loop has not even had a turn to see the stop yet.
    expect(worker.health().ready.checks.state).toEqual({
      status: "fail",
      message: "shutting down (draining): no new jobs are fetched",
    });
    const ready = await probe(port, "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe("fail");
    expect(ready.body.checks.state!.status).toBe("fail");
    const live = await probe(port, "/livez");
    expect(live.status).toBe(200);
    expect(live.body.checks.heartbeatLoop!.status).toBe("ok");
    expect((await app.jobManager.getJob(id))!.status).toBe("doing");

    open();
    await stopped;
    expect((await app.jobManager.getJob(id))!.status).toBe("succeeded");
    expect(worker.probesAddress).toBeNull();
    await expect(probe(port, "/livez")).rejects.toThrow();
  });

  it("a port already taken: run() rejects saying so, and leaves nothing behind", async () => {
    const { port } = await startWorker();
    const second = new Worker(app, { handleSignals: false, probes: { port } });
    await expect(second.run()).rejects.toThrow(
      new RegExp(`could not serve the health probes on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`),
    );
    expect(second.state).toBe("stopped");
    expect(second.probesAddress).toBeNull();
    expect((await app.jobManager.listWorkers()).length).toBe(1);
    expect((await probe(port, "/readyz")).status).toBe(200); // the first one's, untouched
  });
});

// Cutting the database off needs a real server.
describe.skipIf(!pgUrl())("health probes while the database is away (pg)", () => {
  let db: TestDatabase;
  let app: App;
  let admin: PgConnector;
  let name: string;
  let worker: Worker | null = null;

  beforeEach(async () => {
    db = await createTestDatabase("pg");
    name = new URL(db.url!).pathname.slice(1);
    app = new App({ connector: new PgConnector({ connectionString: db.url! }), logger: silentLogger });
    admin = new PgConnector({ connectionString: withDatabase(pgUrl()!, "postgres") });
    await admin.open();
  });

  afterEach(async () => {
    await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
    await admin.close();
    await worker?.stopNow();
    await db.drop();
  });

  it("/readyz 503 (database) while no heartbeat gets through, /livez 200; ready again once back", {
    timeout: 60_000,
  }, async () => {
    worker = new Worker(app, {
      handleSignals: false,
      pollInterval: 100,
      heartbeatInterval: 200,
      probes: { port: 0 },
    });
    void worker.run();
    await waitFor(() => worker!.health().ready.status === "ok", { what: "worker ready" });
    const { port } = worker.probesAddress!;
    expect((await probe(port, "/readyz")).status).toBe(200);

    // Nobody may connect, and the worker's connections are cut.
    await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
    const ready = await waitFor(
      async () => {
        const answer = await probe(port, "/readyz");
        return answer.status === 503 && answer;
      },
      { timeoutMs: 20_000, what: "/readyz 503" },
    );
    expect(ready.body.checks).toEqual({
      state: { status: "ok" },
      database: {
        status: "fail",
        message: "a heartbeat failed: no job is fetched or started until one gets through",
      },
      schema: { status: "ok" },
    });
    // Its loops still come round (they retry), so it is not to be restarted.
    for (let i = 0; i < 5; i++) {
      const live = await probe(port, "/livez");
      expect(live.status).toBe(200);
      expect((await probe(port, "/readyz")).status).toBe(503);
      await new Promise((r) => setTimeout(r, 200));
    }

    await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
    await waitFor(async () => (await probe(port, "/readyz")).status === 200, {
      timeoutMs: 30_000,
      what: "/readyz 200 again",
    });
    expect((await probe(port, "/livez")).status).toBe(200);
  });
});

// The orchestrator's view: a real process, a real SIGTERM.
describe.skipIf(!pgUrl())("health probes of a worker process (real SIGTERM, pg)", () => {
  const tsx = createRequire(import.meta.url).resolve("tsx");
  const script = fileURLToPath(new URL("./fixtures/probes-worker.ts", import.meta.url));
  let db: TestDatabase;
  let app: App;
  let child: ChildProcess | null = null;

  beforeEach(async () => {
    db = await createTestDatabase("pg");
    app = new App({ connector: new PgConnector({ connectionString: db.url! }), logger: silentLogger });
    await app.open();
  });

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    child = null;
    await app.close();
    await db.drop();
  });

  it("SIGTERM: /readyz 503 before fetching stops, /livez 200 while the job runs; exits 0 after it", {
    timeout: 60_000,
  }, async () => {
    const proc = spawn(process.execPath, ["--conditions=@proc/source", "--import", tsx, script], {
      env: { ...process.env, DATABASE_URL: db.url! },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    const output: string[] = [];
    proc.stdout!.on("data", (d) => output.push(String(d)));
    proc.stderr!.on("data", (d) => output.push(String(d)));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.on("exit", (code, signal) => resolve({ code, signal })),
    );
    const lines = () => output.join("").split("\n");
    const port = Number(
      (
        await waitFor(() => lines().find((l) => l.startsWith("ready ")), {
          timeoutMs: 20_000,
          what: `worker ready: ${output.join("")}`,
        })
      ).slice("ready ".length),
    );
    const job = async (id: number): Promise<Job> => (await app.jobManager.getJob(id))!;
    const defer = (task: string) => app.configureTask(task, { allowUnknown: true }).defer({});

    await waitFor(async () => (await probe(port, "/readyz")).status === 200, { what: "/readyz 200" });
    const blocking = await defer("block");
    await waitFor(async () => (await job(blocking)).status === "doing", { what: "job running" });
    // The fetch loop is now inside a fetch, held back by the fixture: it is still fetching.
    await waitFor(() => lines().includes("fetch held"), { what: "a fetch in flight" });

    proc.kill("SIGTERM");
    const notReady = await waitFor(
      async () => {
        const answer = await probe(port, "/readyz");
        return answer.status === 503 && answer;
      },
      { what: "/readyz 503" },
    );
    expect(notReady.body.checks.state).toEqual({
      status: "fail",
      message: "shutting down (draining): no new jobs are fetched",
    });
    const live = await probe(port, "/livez");
    expect(live.status).toBe(200);
    expect(live.body.checks.fetchLoop).toEqual({
      status: "ok",
      message: "not running (the worker is draining)",
    });
    expect(live.body.checks.heartbeatLoop!.status).toBe("ok");
    expect((await job(blocking)).status).toBe("doing"); // still draining
    // Deferred after the signal, while /readyz says 503: never fetched.
    const late = await defer("late");
    expect((await probe(port, "/readyz")).status).toBe(503);

    proc.kill("SIGUSR2"); // the job may finish now
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(await job(blocking)).toMatchObject({ status: "succeeded", result: "released" });
    expect(await job(late)).toMatchObject({ status: "todo", attempts: 0 });

    // From inside the process: every fetch was sent while ready; at the signal a fetch was
    // still in flight and readiness had already flipped; that fetch was the last one.
    const line = lines().find((l) => l.startsWith("timeline "))!;
    const timeline = JSON.parse(line.slice("timeline ".length)) as Array<{
      event: string;
      ready: string;
      state: string;
    }>;
    const signalAt = timeline.findIndex((e) => e.event === "signal");
    expect(signalAt).toBeGreaterThan(0);
    expect(timeline.slice(0, signalAt).every((e) => e.event === "fetch" && e.ready === "ok")).toBe(true);
    expect(timeline.slice(signalAt)).toEqual([
      { event: "signal", ready: "fail", state: "draining" },
      { event: "held fetch sent", ready: "fail", state: "draining" },
    ]);
  });
});
