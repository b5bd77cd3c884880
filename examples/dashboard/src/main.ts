// Start the API with the dashboard beside it and a worker, place orders (one card declined),
// then read every dashboard page over HTTP and bulk-retry the failed charges with the token, as
// an operator would. `--serve` keeps it running for a browser. See README.md.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Worker } from "@proc/worker";
import { ExampleRun, createDatabase, databaseUrlOrSkip, log, waitFor } from "@proc/example-support";

const adminUrl = databaseUrlOrSkip();
const keepServing = process.argv.includes("--serve");
log("dashboard: @proc/dashboard under /admin/jobs beside the API under /api");
const db = await createDatabase(adminUrl, "dashboard");
const runner = new ExampleRun("dashboard", db);

process.env.DATABASE_URL = db.url;
const { app } = await import("./app.js");
const { api, dashboard, DASHBOARD_TOKEN } = await import("./server.js");
const { checks } = runner;
let server: Server | undefined;
let worker: Worker | undefined;
let running: Promise<void> | undefined;

try {
  await app.open();
  await app.migrate();
  worker = new Worker(app, { concurrency: 4, handleSignals: false, name: "example-worker" });
  running = worker.run();
  const { port } = await new Promise<AddressInfo>((resolve) => {
    server = serve(
      { fetch: api.fetch, port: keepServing ? 8080 : 0, hostname: "127.0.0.1" },
      resolve,
    ) as Server;
  });
  const base = `http://127.0.0.1:${port}`;
  log(`API on ${base}/api, dashboard on ${base}/admin/jobs`);
  await scenario(base);
  if (keepServing) {
    log(`open ${base}/admin/jobs (token: ${DASHBOARD_TOKEN}); Ctrl-C to stop`);
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  }
} catch (error) {
  runner.fail(error);
} finally {
  await dashboard.close();
  if (server) {
    const closed = new Promise((resolve) => server!.close(resolve));
    server.closeAllConnections();
    await closed;
  }
  if (worker) {
    await worker.stop();
    await running?.catch(() => {});
  }
  await app.close().catch(() => {});
  await runner.dropDatabase();
}
runner.exit();

async function scenario(base: string): Promise<void> {
  const orders = [
    { customer: "ada", cents: 1200 },
    { customer: "bad-bob", cents: 800 },
    { customer: "bad-carol", cents: 300 },
    { customer: "dan", cents: 4500 },
  ];
  for (const order of orders) {
    const response = await fetch(`${base}/api/orders`, { method: "POST", body: JSON.stringify(order) });
    log(`POST /api/orders ${JSON.stringify(order)} → ${response.status}`);
  }
  const failedCharges = async () =>
    (await app.jobManager.listJobs({ task: "charge_card", status: "failed" })).length;
  await waitFor("the two declined charges to fail", async () => (await failedCharges()) === 2, {
    timeoutMs: 15_000,
  });
  checks.check(true, "two charges failed (declined cards), two succeeded");

  const page = async (path: string, cookie?: string) => {
    const response = await fetch(`${base}/admin/jobs${path}`, { headers: cookie ? { cookie } : {} });
    return { response, body: await response.text() };
  };
  for (const path of ["", "/jobs?status=failed", "/workers", "/periodic", "/locks"]) {
    const { response } = await page(path);
    checks.check(response.status === 200, `GET /admin/jobs${path} → 200`);
  }
  const overview = await page("");
  checks.check(
    overview.response.headers.get("content-security-policy")?.includes("script-src 'self'") === true,
    "pages carry a strict Content-Security-Policy (no inline script)",
  );
  checks.check(/data-queue="billing"/.test(overview.body), "the overview lists the billing queue");
  const workers = await page("/workers");
  checks.check(workers.body.includes("example-worker"), "the workers page shows the running worker");

  // An operator's bulk retry of the failed charges: the page hands out the CSRF cookie and
  // form token; the action also needs the dashboard token.
  const filtered = await page("/jobs?status=failed&task=charge_card");
  const cookie = (filtered.response.headers.get("set-cookie") ?? "").split(";")[0]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(filtered.body)?.[1] ?? "";
  const form = { bulk: "retry:filter", status: "failed", task: "charge_card", csrf };
  const post = (fields: Record<string, string>) =>
    fetch(`${base}/admin/jobs/jobs/bulk`, {
      method: "POST",
      headers: { cookie, accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields),
    });
  const refused = await post(form);
  checks.check(refused.status === 403, "a bulk retry without the token is refused (403)");
  const retried = (await (await post({ ...form, token: DASHBOARD_TOKEN })).json()) as { count: number };
  log(`POST /admin/jobs/jobs/bulk retry:filter status=failed task=charge_card → ${JSON.stringify(retried)}`);
  checks.check(retried.count === 2, "the bulk retry put both failed charges back to waiting");
  // They fail again (the cards are still declined): the dashboard shows it.
  const attempts = async () =>
    (await app.jobManager.listJobs({ task: "charge_card", status: "failed" })).map((j) => j.attempts);
  await waitFor("the retried charges to fail again", async () => (await attempts()).join() === "2,2", {
    timeoutMs: 15_000,
  });
  checks.check(true, "the retried charges ran again (and failed again: the cards are still declined)");
}
