// @proc/dashboard over HTTP (no browser), on every backend: the pages list the right jobs,
// filters and keyset pagination, escaping and redaction, the security headers, the guards of
// every action, read-only mode, and the live stream.
import { type App, InvalidOptions } from "@proc/core";
import { type TestApp, backends, createTestApp } from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Dashboard, createDashboard } from "../src/index.js";
import { CONTENT_SECURITY_POLICY } from "../src/security.js";
import { ORIGIN, XSS_ARGS, doingJob, failedJob, post, session } from "./helpers.js";

const TOKEN = "t0ken-for-the-dashboard-tests";
const get = (d: Dashboard, path: string, headers: Record<string, string> = {}) =>
  d(new Request(`${ORIGIN}${path}`, { headers }));
const text = async (d: Dashboard, path: string) => {
  const response = await get(d, path);
  expect(response.status).toBe(200);
  return response.text();
};
/** Ids of the rows of a jobs page, in order. */
const rowIds = (page: string) => [...page.matchAll(/data-job-id="(\d+)"/g)].map((m) => Number(m[1]));

describe("createDashboard options", () => {
  it("refuses actions without a token or authorize, and every bad option at once", async () => {
    await using t = await createTestApp("pglite");
    expect(() => createDashboard(t.app, { actions: true })).toThrow(
      /actions: true needs `token` or `authorize`/,
    );
    try {
      createDashboard(t.app, { basePath: "admin", token: "short", pageSize: 0 });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptions);
      expect((error as InvalidOptions).problems).toHaveLength(3);
    }
  });
});

describe.each(backends())("@proc/dashboard on %s", (backend) => {
  let t: TestApp;
  let app: App;
  const dashboards: Dashboard[] = [];
  const dashboard = (options: Parameters<typeof createDashboard>[1] = {}) => {
    const d = createDashboard(app, options);
    dashboards.push(d);
    return d;
  };
  beforeEach(async () => {
    t = await createTestApp(backend);
    app = t.app;
  });
  afterEach(async () => {
    for (const d of dashboards.splice(0)) await d.close();
    await t.dispose();
  });

  it("overview: counts per queue and status, workers alive, oldest waiting; strict CSP and no-store", async () => {
    await app.configureTask("send_email", { allowUnknown: true, queue: "emails" }).batchDefer([{}, {}, {}]);
    await failedJob(app);
    await doingJob(app, "report", "reports");
    const d = dashboard();
    const response = await get(d, "/");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-security-policy")).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
    expect(CONTENT_SECURITY_POLICY).not.toContain("unsafe-inline");
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("cache-control")).toBe("no-store");
    // Read-only: no cookie at all.
    expect(response.headers.get("set-cookie")).toBeNull();
    const page = await response.text();
    const row = /<tr data-queue="emails">(.*?)<\/tr>/s.exec(page)?.[1] ?? "";
    expect(row).toMatch(/data-status="todo"><a href="\/jobs\?queue=emails&amp;status=todo">3<\/a>/);
    expect(/<tr data-queue="reports">(.*?)<\/tr>/s.exec(page)?.[1]).toMatch(/data-status="doing"><a[^>]*>1</);
    expect(page).toMatch(/id="total-failed"><div class="n">1</);
    // Two workers registered by the fixtures, both beating now.
    expect(page).toMatch(/id="workers-alive"><div class="n">2 \/ 2</);
    expect(page).toMatch(/id="oldest-waiting"><div class="n">\d+ s</);
    expect(page).not.toMatch(/<script>(?!<\/script>)|<script>[^<]/);
    expect(page).toContain('<script src="/assets/live.js" defer></script>');
    const js = await get(d, "/assets/live.js");
    expect(js.headers.get("content-type")).toContain("text/javascript");
    expect(await js.text()).toContain("EventSource");
    expect((await get(d, "/assets/style.css")).headers.get("content-type")).toContain("text/css");
  });

  it("jobs: filters by status, queue, task, lock and queueing lock; keyset pagination by id", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(await app.configureTask("tick", { allowUnknown: true, queue: "clock" }).defer({ i }));
    const locked = await app
      .configureTask("sync", { allowUnknown: true, queue: "sync", lock: "account:7", queueingLock: "sync:7" })
      .defer({});
    const failed = await failedJob(app, {}, undefined, "flaky");
    const d = dashboard({ pageSize: 2 });

    const first = await text(d, "/jobs?queue=clock");
    expect(rowIds(first)).toEqual([ids[4], ids[3]]);
    expect(first).toContain(`href="/jobs?queue=clock&amp;before=${ids[3]}" id="older"`);
    const second = await text(d, `/jobs?queue=clock&before=${ids[3]}`);
    expect(rowIds(second)).toEqual([ids[2], ids[1]]);
    const third = await text(d, `/jobs?queue=clock&before=${ids[1]}`);
    expect(rowIds(third)).toEqual([ids[0]]);
    expect(third).not.toContain('id="older"');
    expect(third).toContain('id="newest"');

    const all = dashboard();
    expect(rowIds(await text(all, "/jobs?status=failed"))).toEqual([failed]);
    expect(rowIds(await text(all, "/jobs?task=flaky"))).toEqual([failed]);
    expect(rowIds(await text(all, "/jobs?lock=account%3A7"))).toEqual([locked]);
    expect(rowIds(await text(all, "/jobs?queueing_lock=sync%3A7"))).toEqual([locked]);
    expect(rowIds(await text(all, "/jobs?status=todo&queue=sync"))).toEqual([locked]);
    expect(rowIds(await text(all, "/jobs?status=succeeded"))).toEqual([]);
    // The filter form shows what is filtered.
    expect(await text(all, "/jobs?status=failed")).toContain('<option value="failed" selected>');
  });

  it("job detail: args, error with stack, attempts, run, lock, history; payloads escaped, secrets redacted", async () => {
    const id = await failedJob(app, XSS_ARGS, {
      name: "Error",
      message: "<img src=x onerror=alert(2)> cannot reach postgres://app:hunter2-secret@db/app",
      stack: "Error: at <script>alert(3)</script>",
    });
    const page = await text(dashboard(), `/jobs/${id}`);
    expect(page).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(page).toContain("&lt;img src=x onerror=alert(1)&gt;");
    expect(page).toContain("&lt;img src=x onerror=alert(2)&gt; cannot reach");
    expect(page).toContain("Error: at &lt;script&gt;alert(3)&lt;/script&gt;");
    expect(page).not.toMatch(/<script>alert|<img src=x/);
    expect(page).not.toContain("hunter2");
    expect(page).toContain("postgres://app:***@db.internal:5432/app");
    expect(page).toMatch(/<dt>attempts<\/dt><dd>1<\/dd>/);
    expect(page).toMatch(/<dt>run<\/dt><dd>1<\/dd>/);
    const timeline = /<ol class="timeline" id="timeline">(.*?)<\/ol>/s.exec(page)?.[1] ?? "";
    expect([...timeline.matchAll(/<span class="type">(\w+)<\/span>/g)].map((m) => m[1])).toEqual([
      "deferred",
      "started",
      "failed",
    ]);
    const locked = await app
      .configureTask("sync", { allowUnknown: true, lock: "account:7", queueingLock: "sync:7" })
      .defer({});
    const detail = await text(dashboard(), `/jobs/${locked}`);
    expect(detail).toMatch(/<dt>lock<\/dt><dd>account:7<\/dd>/);
    expect(detail).toMatch(/<dt>queueing lock<\/dt><dd>sync:7<\/dd>/);
    expect((await get(dashboard(), "/jobs/999999")).status).toBe(404);
  });

  it("read-only (the default): no action form, every POST refused", async () => {
    const id = await failedJob(app);
    const d = dashboard();
    const page = await text(d, `/jobs/${id}`);
    expect(page).not.toContain('id="actions"');
    expect(page).not.toContain('method="post"');
    const response = await d(post(`/jobs/${id}/actions`, { action: "retry", token: TOKEN }));
    expect(response.status).toBe(403);
    expect(await response.text()).toContain("read-only");
    expect((await app.jobManager.getJob(id))?.status).toBe("failed");
  });

  it("actions with a token: refused without it, with a wrong one, cross-site or without CSRF; accepted with it", async () => {
    const id = await failedJob(app);
    const d = dashboard({ actions: true, token: TOKEN });
    const { cookie, csrf } = await session(d, `/jobs/${id}`);
    const page = await text(d, `/jobs/${id}`);
    expect(page).toContain('id="actions"');
    expect(page).toContain('value="retry"');
    const path = `/jobs/${id}/actions`;
    const refused = async (request: Request, reason: RegExp) => {
      const response = await d(request);
      expect(response.status).toBe(403);
      expect(await response.text()).toMatch(reason);
      expect((await app.jobManager.getJob(id))?.status).toBe("failed");
    };
    await refused(post(path, { action: "retry", csrf }, { cookie }), /needs the dashboard token/);
    await refused(
      post(path, { action: "retry", csrf, token: "wrong-token-wrong-token" }, { cookie }),
      /wrong dashboard token/,
    );
    await refused(
      post(path, { action: "retry", csrf, token: TOKEN }, { cookie, origin: "https://evil.example" }),
      /another origin/,
    );
    await refused(
      post(path, { action: "retry", csrf, token: TOKEN }, { cookie, "sec-fetch-site": "cross-site" }),
      /cross-site request/,
    );
    await refused(post(path, { action: "retry", token: TOKEN }, { cookie }), /no CSRF token/);
    await refused(post(path, { action: "retry", csrf, token: TOKEN }), /no CSRF cookie/);
    const other = await session(d, `/jobs/${id}`);
    await refused(
      post(path, { action: "retry", csrf: other.csrf, token: TOKEN }, { cookie }),
      /wrong CSRF token/,
    );

    const ok = await d(post(path, { action: "retry", csrf, token: TOKEN }, { cookie }));
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe(`/jobs/${id}?done=retry`);
    expect((await app.jobManager.getJob(id))?.status).toBe("todo");
    expect(await text(d, `/jobs/${id}?done=retry`)).toContain('id="notice">Retried');
    // The token as a header, for scripts; an action that does not apply is a conflict.
    const again = await d(
      post(
        path,
        { action: "retry", csrf },
        { cookie, authorization: `Bearer ${TOKEN}`, accept: "application/json" },
      ),
    );
    expect(again.status).toBe(409);
    const cancel = await d(
      post(
        path,
        { action: "cancel", csrf },
        { cookie, "x-proc-dashboard-token": TOKEN, accept: "application/json" },
      ),
    );
    expect(await cancel.json()).toEqual({ id, action: "cancel", status: "cancelled" });
    const deleted = await d(post(path, { action: "delete", csrf, token: TOKEN }, { cookie }));
    expect(deleted.status).toBe(303);
    expect(await app.jobManager.getJob(id)).toBeNull();
  });

  it("abort asks a running job to abort; delete refuses a running job", async () => {
    const id = await doingJob(app);
    const d = dashboard({ actions: true, token: TOKEN });
    const { cookie, csrf } = await session(d, `/jobs/${id}`);
    const path = `/jobs/${id}/actions`;
    expect((await d(post(path, { action: "delete", csrf, token: TOKEN }, { cookie }))).status).toBe(409);
    expect((await d(post(path, { action: "abort", csrf, token: TOKEN }, { cookie }))).status).toBe(303);
    const job = await app.jobManager.getJob(id);
    expect(job?.status).toBe("doing");
    expect(job?.abortRequested).toBe(true);
    expect(job?.events.map((e) => e.type)).toContain("abort_requested");
  });

  it("actions with the host's authorize hook: asked with the request and the action", async () => {
    const id = await failedJob(app);
    const asked: string[] = [];
    const d = dashboard({
      actions: true,
      authorize: (request, action) => {
        asked.push(action);
        return request.headers.get("x-role") === "admin";
      },
    });
    const { cookie, csrf } = await session(d, `/jobs/${id}`);
    expect(await text(d, `/jobs/${id}`)).not.toContain('name="token"');
    const path = `/jobs/${id}/actions`;
    const refused = await d(post(path, { action: "retry", csrf }, { cookie, "x-role": "guest" }));
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain("not authorized to retry jobs");
    expect((await d(post(path, { action: "retry", csrf }, { cookie, "x-role": "admin" }))).status).toBe(303);
    expect(asked).toEqual(["retry", "retry"]);
    expect((await app.jobManager.getJob(id))?.status).toBe("todo");
  });

  it("mounts under a base path: every route and link under it", async () => {
    const id = await app.configureTask("tick", { allowUnknown: true }).defer({});
    const d = dashboard({ basePath: "/admin/proc/" });
    expect(d.basePath).toBe("/admin/proc");
    const overview = await text(d, "/admin/proc");
    expect(overview).toContain('href="/admin/proc/assets/style.css"');
    expect(overview).toContain('data-events="/admin/proc/events"');
    expect(rowIds(await text(d, "/admin/proc/jobs"))).toEqual([id]);
    expect(await text(d, `/admin/proc/jobs/${id}`)).toContain(`Job ${id}`);
    expect((await get(d, "/jobs")).status).toBe(404);
  });

  it("live: the event stream says ready, then change after a defer", async () => {
    const d = dashboard({ pollInterval: 200 });
    const response = await get(d, "/events");
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let received = "";
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(received)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended before ${pattern}: ${received}`);
        received += value;
      }
    };
    await readUntil(/event: ready/);
    // LISTEN is in place once the stream is ready? Not necessarily: the poll catches the
    // defer even if its NOTIFY came first.
    await app.configureTask("tick", { allowUnknown: true }).defer({});
    await readUntil(/event: change/);
    await reader.cancel();
  });
});
