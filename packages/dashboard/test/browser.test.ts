// The dashboard in a real browser: Debian's Chromium driven by playwright-core against a real
// server on the real database. Every page is loaded, filtered, opened; the jobs list and the
// overview update live after a defer without a reload; pausing holds them still; a failed job
// is retried with the token; the XSS payloads show as text and no dialog but our confirmation
// fires. Screenshots of each page land in test-results/ (look at them: they are the product).
import { existsSync, mkdirSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type TestApp, backends, createTestApp } from "@proc/fixtures";
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

  const shot = (name: string) => page.screenshot({ path: join(RESULTS, `${name}.png`), fullPage: true });
  const defer = (queue: string, args = {}) =>
    t.app.configureTask("send_email", { allowUnknown: true, queue }).defer(args);

  beforeAll(async () => {
    mkdirSync(RESULTS, { recursive: true });
    t = await createTestApp(backend);
    dashboard = createDashboard(t.app, { basePath: BASE, actions: true, token: TOKEN, pollInterval: 500 });
    const listener = nodeListener(dashboard);
    server = createServer((request, response) => {
      if (request.url?.startsWith(BASE)) void listener(request, response);
      else response.writeHead(404).end("the host app's own route\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${BASE}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("dialog", (dialog) => {
      dialogs.push({ type: dialog.type(), message: dialog.message() });
      // Only our own confirmation is answered yes; an alert would be the XSS payload running.
      void (dialog.type() === "confirm" ? dialog.accept() : dialog.dismiss());
    });
  });

  afterAll(async () => {
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

  it("job detail: the XSS payloads are text, no dialog fires; retry with the token changes the status", async () => {
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
