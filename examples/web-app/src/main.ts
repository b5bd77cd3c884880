// Start the HTTP service and a worker in this process, call the API with fetch, and
// check that a job is deferred with its transaction or not at all. See README.md.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Worker } from "@proc/worker";
import { ExampleRun, createDatabase, databaseUrlOrSkip, log, waitFor } from "@proc/example-support";

const adminUrl = databaseUrlOrSkip();
log("web-app: POST /signup defers a job in the same transaction as the new user");
const db = await createDatabase(adminUrl, "web_app");
log(`created database ${db.name}`);
const runner = new ExampleRun("web-app", db);

// The app module reads DATABASE_URL.
process.env.DATABASE_URL = db.url;
const { app, pool, CREATE_USERS_TABLE } = await import("./app.js");
const { api } = await import("./server.js");
const { checks } = runner;
let server: Server | undefined;
let worker: Worker | undefined;
let running: Promise<void> | undefined;

try {
  await app.open();
  await app.migrate();
  await pool.query(CREATE_USERS_TABLE);
  log("migrated (app.migrate()) and created the users table");

  // The worker runs in this process: we stop it ourselves, so no signal handlers.
  worker = new Worker(app, { concurrency: 2, handleSignals: false });
  worker.on("job:start", ({ job }) => log(`  worker │ job ${job.id} (${job.task}) started`));
  worker.on("job:success", ({ job, result }) =>
    log(`  worker │ job ${job.id} (${job.task}) succeeded: ${JSON.stringify(result)}`),
  );
  worker.on("job:error", ({ job, error }) => log(`  worker │ job ${job.id} failed: ${String(error)}`));
  running = worker.run();

  // Port 0: any free port.
  const { port } = await new Promise<AddressInfo>((resolve) => {
    server = serve({ fetch: api.fetch, port: 0, hostname: "127.0.0.1" }, resolve) as Server;
  });
  log(`HTTP service listening on http://127.0.0.1:${port}`);
  await scenario(`http://127.0.0.1:${port}`);
} catch (error) {
  runner.fail(error);
} finally {
  if (server) {
    const closed = new Promise((resolve) => server!.close(resolve));
    server.closeAllConnections();
    await closed;
    log("HTTP service closed");
  }
  if (worker) {
    await worker.stop();
    await running?.catch(() => {});
    log("worker stopped");
  }
  await app.close().catch(() => {});
  await pool.end().catch(() => {});
  await runner.dropDatabase();
}
runner.exit();

async function call(base: string, method: "GET" | "POST", path: string, body?: unknown) {
  const response = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  log(
    `${method} ${path}${body === undefined ? "" : ` ${JSON.stringify(body)}`} → ${response.status} ${JSON.stringify(json)}`,
  );
  return { status: response.status, json };
}

async function countJobs(): Promise<number> {
  return (await app.jobManager.listJobs({ limit: 1000 })).length;
}

async function countUsers(): Promise<number> {
  return (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM users")).rows[0]!.n;
}

async function scenario(base: string): Promise<void> {
  console.log("\n1. a signup: the user and the job commit together; the worker sends the email");
  const signup = await call(base, "POST", "/signup", { email: "alice@example.com" });
  checks.check(signup.status === 201, `signup answered 201 (${signup.status})`);
  const jobId = Number(signup.json.jobId);
  let lastStatus = "";
  const final = await waitFor(
    `job ${jobId} to finish`,
    async () => {
      const response = await fetch(`${base}/jobs/${jobId}`);
      const job = (await response.json()) as { status: string; result: unknown };
      if (job.status !== lastStatus) {
        lastStatus = job.status;
        log(`GET /jobs/${jobId} → ${response.status} ${JSON.stringify(job)}`);
      }
      return ["succeeded", "failed", "cancelled", "aborted"].includes(job.status) && job;
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  checks.check(final.status === "succeeded", `job ${jobId} succeeded (${final.status})`);
  checks.check(
    (final.result as { sentTo?: string } | null)?.sentTo === "alice@example.com",
    `its result names alice (${JSON.stringify(final.result)})`,
  );

  console.log("\n2. the same email again: the job is deferred, then COMMIT fails: no user, no job");
  const jobsBefore = await countJobs();
  const usersBefore = await countUsers();
  const duplicate = await call(base, "POST", "/signup", { email: "alice@example.com" });
  checks.check(duplicate.status === 409, `duplicate signup answered 409 (${duplicate.status})`);
  const jobsAfter = await countJobs();
  const usersAfter = await countUsers();
  checks.check(jobsAfter === jobsBefore, `no new job (jobs: ${jobsBefore} before, ${jobsAfter} after)`);
  // Nothing else defers jobs here, so the rolled-back job had the next id (see the api line).
  const rolledBack = await call(base, "GET", `/jobs/${jobId + 1}`);
  checks.check(rolledBack.status === 404, `job ${jobId + 1}, deferred then rolled back, does not exist`);
  checks.check(usersAfter === usersBefore, `no new user (users: ${usersBefore} before, ${usersAfter} after)`);

  console.log("\n3. errors");
  const bad = await call(base, "POST", "/signup", { mail: "bob@example.com" });
  checks.check(bad.status === 400, `a signup without an email answered 400 (${bad.status})`);
  const missing = await call(base, "GET", "/jobs/999999");
  checks.check(missing.status === 404, `an unknown job answered 404 (${missing.status})`);
  console.log("");
}
