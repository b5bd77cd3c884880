// The dashboard in a real browser: Debian's Chromium driven by playwright-core against a real
// server on the real database. Every page is loaded, filtered, opened; the jobs list and the
// overview update live after a defer without a reload; pausing holds them still; the charts are
// drawn by the bundled uPlot under the strict CSP (no violation reported); a failed job is
// retried with the token; a whole filter is bulk-retried; a running job is aborted and its task
// sees ctx.signal fire; the XSS payloads show as text and no dialog but our confirmations fires.
// Screenshots of each page land in test-results/ (look at them: they are the product).
import { existsSync, mkdirSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type TestApp, backends, createTestApp } from "@proc/fixtures";
import { Worker } from "@proc/worker";
import { type Browser, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Dashboard, createDashboard, nodeListener } from "../src/index.js";
import { XSS_ARGS, failedJob } from "./helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const RESULTS = fileURLToPath(new URL("../test-results/", import.meta.url));
const TOKEN = "browser-test-token-0123456789";
const BASE = "/ops/queue";
const haveBrowser = existsSync(CHROMIUM);
const requireBrowser = process.env.PROC_REQUIRE_BROWSER === "1";

describe.runIf(!haveBrowser && requireBrowser)("the browser suite", () => {
  it("needs Chromium", () => {
    expect.fail(
      `PROC_REQUIRE_BROWSER=1 but ${CHROMIUM} is missing: install it with \`apt-get install -y chromium\``,
    );
  });
});

// The real Postgres when there is one (CI), else PGlite.
const backend = backends().at(-1)!;

describe.runIf(haveBrowser)(`@proc/dashboard in Chromium on ${backend}`, () => {
  let t: TestApp;
  let dashboard: Dashboard;
  let server: Server;
  let browser: Browser;
  let page: Page;
  let url: string;
  const dialogs: Array<{ type: string; message: string }> = [];
  /** Console errors and CSP violations: none may happen. */
  const problems: string[] = [];
  let signalSeen = false;
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;

  const shot = (name: string) => page.screenshot({ path: join(RESULTS, `${name}.png`), fullPage: true });
  const defer = (queue: string, args = {}) =>
    t.app.configureTask("send_email", { allowUnknown: true, queue }).defer(args);

  beforeAll(async () => {
    mkdirSync(RESULTS, { recursive: true });
    t = await createTestApp(backend);
    // A task that runs until its signal fires, for the abort test.
    t.app.task({ name: "wait_for_abort", queue: "abortable" }, async (_args: object, ctx) => {
      await new Promise<void>((resolve) =>
        ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
      );
      signalSeen = true;
      throw ctx.signal.reason ?? new Error("aborted");
    });
    const tick = Math.floor(Date.now() / 60_000) * 60;
    await t.app.jobManager.deferPeriodicJob("", tick, {
      task: "nightly_report",
      queue: "reports",
      priority: 0,
      lock: null,
      queueingLock: null,
      args: { timestamp: tick },
      scheduledAt: null,
    });
    dashboard = createDashboard(t.app, {
      basePath: BASE,
      actions: true,
      token: TOKEN,
      pollInterval: 500,
      periodic: [
        {
          taskName: "nightly_report",
          periodicId: "",
          cron: "0 3 * * *",
          timezone: "Europe/Paris",
          nextTick: () => new Date(Math.ceil(Date.now() / 86_400_000) * 86_400_000 + 2 * 3_600_000),
        },
        {
          taskName: "retry_stalled_jobs",
          periodicId: "",
          cron: "*/10 * * * *",
          timezone: "UTC",
          nextTick: () => new Date(Math.ceil(Date.now() / 600_000) * 600_000),
        },
      ],
    });
    const listener = nodeListener(dashboard);
    server = createServer((request, response) => {
      if (request.url?.startsWith(BASE)) void listener(request, response);
      else response.writeHead(404).end("the host app's own route\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${BASE}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("dialog", (dialog) => {
      dialogs.push({ type: dialog.type(), message: dialog.message() });
      // Only our own confirmation is answered yes; an alert would be the XSS payload running.
      void (dialog.type() === "confirm" ? dialog.accept() : dialog.dismiss());
    });
  });

  afterAll(async () => {
    await worker?.stop();
    await running;
    await browser?.close();
    await dashboard?.close();
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await t?.dispose();
  });

  /** Wait until the live stream is up, then mark the window: a reload would lose the mark. */
  async function markLive(): Promise<void> {
    await page.waitForSelector('#live-state[data-state="live"]');
    await page.evaluate(() => {
      (globalThis as unknown as { procMark: number }).procMark = 42;
    });
  }
  const stillSameWindow = () =>
    page.evaluate(() => (globalThis as unknown as { procMark?: number }).procMark === 42);

  it("overview: every queue with its counts, updated live after a defer", async () => {
    await defer("emails", { to: "a@example.com" });
    await defer("emails", { to: "b@example.com" });
    await defer("reports");
    await failedJob(t.app, XSS_ARGS);
    await page.goto(url);
    await expect(page.locator('tr[data-queue="emails"] td[data-status="todo"]').textContent()).resolves.toBe(
      "2",
    );
    await markLive();
    await defer("emails");
    await expect
      .poll(() => page.locator('tr[data-queue="emails"] td[data-status="todo"]').textContent(), {
        timeout: 5000,
      })
      .toBe("3");
    expect(await stillSameWindow()).toBe(true);
    // Both charts drawn by uPlot, again after the live refresh, with nothing refused by the CSP.
    await page.waitForSelector('html[data-charts="2"]');
    expect(await page.locator("#chart-throughput canvas").count()).toBe(1);
    expect(await page.locator("#chart-wait canvas").count()).toBe(1);
    expect(problems).toEqual([]);
    await shot("overview");
  });

  it("jobs: filter, the list updates live, pausing holds it still", async () => {
    await page.goto(`${url}/jobs`);
    await page.selectOption('select[name="status"]', "failed");
    await page.click('button:has-text("Filter")');
    await page.waitForURL(/status=failed/);
    expect(await page.locator("tr[data-job-id]").count()).toBe(1);
    expect(await page.locator("tr[data-job-id] .status").textContent()).toBe("failed");
    await shot("jobs-filtered");

    await page.goto(`${url}/jobs`);
    await markLive();
    const id = await defer("emails", { to: "live@example.com" });
    await page.waitForSelector(`tr[data-job-id="${id}"]`, { timeout: 5000 });
    expect(await stillSameWindow()).toBe(true);

    await page.click("#live-toggle");
    await page.waitForSelector('#live-state[data-state="paused"]');
    const held = await defer("emails");
    await page.waitForTimeout(1500);
    expect(await page.locator(`tr[data-job-id="${held}"]`).count()).toBe(0);
    await page.click("#live-toggle");
    await page.waitForSelector(`tr[data-job-id="${held}"]`, { timeout: 5000 });
    await shot("jobs");
  });

  it("workers, periodic tasks and locks: each page loads and shows what the database holds", async () => {
    worker = new Worker(t.app, {
      queues: ["abortable"],
      concurrency: 2,
      name: "browser-worker",
      handleSignals: false,
    });
    running = worker.run();
    const holder = await t.app
      .configureTask("sync_account", { allowUnknown: true, queue: "sync", lock: "account:42" })
      .defer({});
    await t.app
      .configureTask("sync_account", { allowUnknown: true, queue: "sync", lock: "account:42" })
      .batchDefer([{}, {}]);
    await t.app
      .configureTask("sync_account", { allowUnknown: true, queue: "sync", lock: "account:7" })
      .defer({});
    const [claimed] = await t.app.jobManager.fetchJobs(
      await t.app.jobManager.registerWorker({
        name: "sync-worker",
        host: "ops-1",
        pid: 4242,
        queues: ["sync"],
        concurrency: 4,
      }),
      ["sync"],
      1,
    );
    expect(claimed?.id).toBe(holder);

    await page.goto(`${url}/workers`);
    await page.waitForSelector("#workers-table");
    expect(await page.locator("#workers-table tbody tr").allTextContents()).toEqual(
      expect.arrayContaining([
        expect.stringContaining("browser-worker"),
        expect.stringContaining("sync-worker"),
      ]),
    );
    await shot("workers");

    await page.goto(`${url}/periodic`);
    const nightly = page.locator('tr[data-task="nightly_report"]');
    expect(await nightly.locator("code").textContent()).toBe("0 3 * * *");
    expect(await nightly.textContent()).toContain("Europe/Paris");
    expect(await nightly.locator(".status").textContent()).toBe("todo");
    expect(await page.locator('tr[data-task="retry_stalled_jobs"]').textContent()).toContain("never");
    await shot("periodic");

    await page.goto(`${url}/locks`);
    const held = page.locator('tr[data-lock="account:42"]');
    expect(await held.locator("[data-holder]").textContent()).toBe(`job ${holder}`);
    expect(await held.locator("[data-waiting]").textContent()).toBe("2");
    expect(await page.locator('tr[data-lock="account:7"]').textContent()).toContain("free");
    await shot("locks");
    expect(problems).toEqual([]);
  });

  it("jobs: filter by task and search in args, then bulk-retry the whole filter with a confirmation", async () => {
    const failed = [
      await failedJob(t.app, { customer: "acme-1" }, undefined, "charge_card"),
      await failedJob(t.app, { customer: "acme-2" }, undefined, "charge_card"),
      await failedJob(t.app, { customer: "globex" }, undefined, "charge_card"),
    ];
    await page.goto(`${url}/jobs`);
    await page.fill('input[name="task"]', "charge_card");
    await page.fill('input[name="q"]', "acme");
    await page.click('button:has-text("Filter")');
    await page.waitForURL(/q=acme/);
    expect(await page.locator("tr[data-job-id]").count()).toBe(2);
    await page.fill('input[name="q"]', "");
    await page.selectOption('select[name="status"]', "failed");
    await page.click('button:has-text("Filter")');
    await page.waitForURL(/status=failed/);
    expect(await page.locator("tr[data-job-id]").count()).toBe(3);
    // Nothing ticked: the "selected" buttons are off.
    expect(await page.locator('button[value="retry:selected"]').isDisabled()).toBe(true);
    await page.locator(`input[name="ids"][value="${failed[0]}"]`).check();
    expect(await page.locator('button[value="retry:selected"]').isDisabled()).toBe(false);
    await shot("jobs-bulk-selection");

    await page.fill('input[name="token"]', TOKEN);
    dialogs.length = 0;
    await page.click('button[value="retry:filter"]');
    await page.waitForURL(/done=retry/);
    expect(dialogs).toEqual([
      {
        type: "confirm",
        message: "Retry EVERY finished job that matches this filter? (status=failed, task=charge_card)",
      },
    ]);
    expect(await page.locator("#notice").textContent()).toBe("Retried 3 jobs.");
    for (const id of failed) expect((await t.app.jobManager.getJob(id))?.status).toBe("todo");
    // Still filtered by status=failed: they left the list.
    expect(await page.locator("tr[data-job-id]").count()).toBe(0);
    await shot("jobs-bulk-retried");
  });

  it("abort: a running job's ctx.signal fires in its worker, the job ends aborted", async () => {
    const id = await t.app.configureTask("wait_for_abort").defer({});
    await expect
      .poll(async () => (await t.app.jobManager.getJob(id))?.status, { timeout: 10_000 })
      .toBe("doing");
    await page.goto(`${url}/jobs/${id}`);
    expect(await page.locator("#job .status").first().textContent()).toBe("doing");
    await page.fill('input[name="token"]', TOKEN);
    dialogs.length = 0;
    await page.click('button[value="abort"]');
    await page.waitForURL(/done=abort/);
    expect(dialogs).toEqual([{ type: "confirm", message: `Abort job ${id}?` }]);
    // The status changes live, without a reload.
    await page.waitForSelector("#job .status.aborted", { timeout: 10_000 });
    expect(signalSeen).toBe(true);
    expect(await page.locator("#timeline li .type").allTextContents()).toEqual(
      expect.arrayContaining(["abort_requested", "aborted"]),
    );
    await shot("job-aborted");
    expect(problems).toEqual([]);
  });

  it("job detail: the XSS payloads are text, no dialog fires; retry with the token changes the status", async () => {
    dialogs.length = 0;
    const id = await failedJob(t.app, XSS_ARGS, {
      name: "Error",
      message: "<img src=x onerror=alert(2)>",
      stack: "Error: <script>alert(3)</script>\n    at task (task.ts:1:1)",
    });
    await page.goto(`${url}/jobs`);
    await page.click(`tr[data-job-id="${id}"] a`);
    await page.waitForURL(new RegExp(`/jobs/${id}$`));
    const args = await page.locator("#args").textContent();
    expect(args).toContain("<script>alert(1)</script>");
    expect(args).toContain("<img src=x onerror=alert(1)>");
    expect(args).not.toContain("hunter2");
    expect(await page.locator("#error").textContent()).toContain("<img src=x onerror=alert(2)>");
    expect(await page.locator("main img, main script").count()).toBe(0);
    expect(dialogs).toEqual([]);
    expect(await page.locator("#timeline li .type").allTextContents()).toEqual([
      "deferred",
      "started",
      "failed",
    ]);
    await shot("job-failed");

    await page.fill('input[name="token"]', TOKEN);
    await page.click('button[value="retry"]');
    await page.waitForURL(/done=retry/);
    expect(await page.locator("#job .status").first().textContent()).toBe("todo");
    expect(await page.locator("#notice").textContent()).toContain("Retried");
    expect(dialogs).toEqual([{ type: "confirm", message: `Retry job ${id}?` }]);
    expect((await t.app.jobManager.getJob(id))?.status).toBe("todo");
    await shot("job-retried");
  });

  it("a wrong token is refused and changes nothing", async () => {
    const id = await failedJob(t.app);
    await page.goto(`${url}/jobs/${id}`);
    await page.fill('input[name="token"]', "not-the-token-at-all");
    await page.click('button[value="retry"]');
    await page.waitForSelector("#message");
    expect(await page.locator("#message").textContent()).toContain("wrong dashboard token");
    expect((await t.app.jobManager.getJob(id))?.status).toBe("failed");
    await shot("refused");
  });
});
