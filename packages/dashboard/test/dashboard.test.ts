// @proc/dashboard over HTTP (no browser), on every backend: the pages list the right jobs,
// filters and keyset pagination, escaping and redaction, the security headers, the guards of
// every action, read-only mode, and the live stream.
import { type App, InvalidOptions } from "@proc/core";
import { type TestApp, backends, createTestApp } from "@proc/fixtures";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
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
    expect(page).toMatch(/id="total-failed"><div class="n"><a[^>]*>1</);
    expect(page).toMatch(/id="recent-failed"><div class="n">1</);
    // Two workers registered by the fixtures, both beating now.
    expect(page).toMatch(/id="workers-alive"><div class="n"><a href="\/workers">2 \/ 2</);
    expect(page).toMatch(/id="oldest-waiting"><div class="n">\d+ s</);
    // The charts' data: one point a minute for the last hour, the failed job in the last one.
    const series = JSON.parse(
      (/id="chart-data" hidden data-series="([^"]*)"/.exec(page)?.[1] ?? "").replaceAll("&quot;", '"'),
    );
    expect(series.t).toHaveLength(60);
    expect(series.failed.reduce((a: number, b: number) => a + b, 0)).toBe(1);
    expect(page).toContain('<script src="/assets/uplot.js" defer></script>');
    expect(page).toContain('<link rel="stylesheet" href="/assets/uplot.css">');
    expect(page).not.toMatch(/<script>(?!<\/script>)|<script>[^<]/);
    expect(page).toContain('<script src="/assets/live.js" defer></script>');
    const js = await get(d, "/assets/live.js");
    expect(js.headers.get("content-type")).toContain("text/javascript");
    expect(await js.text()).toContain("EventSource");
    expect((await get(d, "/assets/style.css")).headers.get("content-type")).toContain("text/css");
    // uPlot is served by the dashboard itself (bundled at build time), with its license.
    const uplot = await get(d, "/assets/uplot.js");
    expect(uplot.headers.get("content-type")).toContain("text/javascript");
    expect(await uplot.text()).toMatch(/^\/\*! uPlot 1\.\d+\.\d+ \| The MIT License/);
    expect(await (await get(d, "/assets/charts.js")).text()).toContain("new uPlot(");
    expect((await get(d, "/assets/nope.js")).status).toBe(404);
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
    expect(detail).toMatch(/<dt>lock<\/dt><dd><a href="\/jobs\?lock=account%3A7">account:7<\/a><\/dd>/);
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

  it("jobs: filters by worker, creation time (UTC) and text or a JSON object in args", async () => {
    const mail = app.configureTask("mail", { allowUnknown: true, queue: "mail" });
    const ada = await mail.defer({ to: "ada@example.com", n: 1 });
    const bob = await mail.defer({ to: "bob@example.com", n: 2 });
    const running = await doingJob(app);
    const workerId = (await app.jobManager.getJob(running))?.workerId;
    // Ids grow with time: moving the first job back two days keeps that true.
    await app.connector.query(
      `UPDATE "${app.schema}".jobs SET created_at = now() - interval '2 days' WHERE id = $1`,
      [ada],
    );
    const d = dashboard();
    expect(rowIds(await text(d, "/jobs?q=ADA%40example"))).toEqual([ada]);
    expect(rowIds(await text(d, `/jobs?q=${encodeURIComponent('{"n": 2}')}`))).toEqual([bob]);
    expect(rowIds(await text(d, `/jobs?q=${encodeURIComponent('{"n": 3}')}`))).toEqual([]);
    expect(rowIds(await text(d, `/jobs?worker=${workerId}`))).toEqual([running]);
    const dayAgo = new Date(Date.now() - 86_400_000).toISOString().slice(0, 16);
    expect(rowIds(await text(d, `/jobs?to=${dayAgo}`))).toEqual([ada]);
    const recent = await text(d, `/jobs?from=${dayAgo}`);
    expect(rowIds(recent)).toEqual([running, bob]);
    // The form shows the filter; its times are UTC.
    expect(recent).toContain(`name="from" value="${dayAgo}"`);
    expect(rowIds(await text(d, `/jobs?from=${dayAgo}Z&q=bob`))).toEqual([bob]);
  });

  it("jobs: a filtered page reads bounded ranges of ids; a rare match far back is a 'search older' away", async () => {
    const rare = await app.configureTask("rare", { allowUnknown: true }).defer({});
    await app.connector.query(`SELECT setval('"${app.schema}".jobs_id_seq', 1000000)`);
    const common = await app.configureTask("common", { allowUnknown: true }).defer({});
    const d = dashboard();
    const first = await text(d, "/jobs?task=rare");
    expect(rowIds(first)).toEqual([]);
    expect(first).toContain("No job matches among the ids 600,002 to 1,000,001.");
    expect(first).toContain(`href="/jobs?task=rare&amp;before=${rare + 1}" id="older">Search older jobs »`);
    expect(rowIds(await text(d, `/jobs?task=rare&before=${rare + 1}`))).toEqual([rare]);
    // Unfiltered, the primary key's order bounds the read: no range, no gap.
    expect(rowIds(await text(d, "/jobs"))).toEqual([common, rare]);
  });

  it("workers, periodic tasks and locks pages", async () => {
    const holder = await doingJob(app, "sync", "default", "account:1");
    const behind = app.configureTask("sync", { allowUnknown: true, lock: "account:1" });
    await behind.batchDefer([{}, {}]);
    await app.configureTask("sync", { allowUnknown: true, lock: "account:2" }).defer({});
    const workerId = (await app.jobManager.getJob(holder))?.workerId;

    const workers = await text(dashboard(), "/workers");
    const row = new RegExp(`<tr data-worker-id="${workerId}">(.*?)</tr>`, "s").exec(workers)?.[1] ?? "";
    expect(row).toContain(`<td class="nowrap">w-${holder}</td>`);
    expect(row).toMatch(
      new RegExp(`data-running><a href="/jobs\\?status=doing&amp;worker=${workerId}">1</a>`),
    );
    expect(row).toContain(`<a class="chip" href="/jobs/${holder}"`);
    expect(row).toMatch(/<span class="badge alive">alive<\/span> \d+ s ago/);

    const locks = await text(dashboard(), "/locks");
    const held = /<tr data-lock="account:1">(.*?)<\/tr>/s.exec(locks)?.[1] ?? "";
    expect(held).toContain(
      `<td data-holder="${holder}"><a href="/jobs/${holder}">job ${holder}</a></td><td>sync</td>`,
    );
    expect(held).toMatch(/data-waiting><a href="\/jobs\?lock=account%3A1&amp;status=todo">2<\/a>/);
    const free = /<tr data-lock="account:2">(.*?)<\/tr>/s.exec(locks)?.[1] ?? "";
    expect(free).toContain("free: its next job has not started");
    // Held locks first.
    expect(locks.indexOf('data-lock="account:1"')).toBeLessThan(locks.indexOf('data-lock="account:2"'));

    const tick = Math.floor(Date.now() / 60_000) * 60 - 300;
    const job = {
      queue: "default",
      priority: 0,
      lock: null,
      queueingLock: null,
      args: {},
      scheduledAt: null,
    };
    const reportJob = await app.jobManager.deferPeriodicJob("", tick, { ...job, task: "report" });
    await app.jobManager.deferPeriodicJob("nightly", tick, { ...job, task: "orphan" });
    const next = new Date(Date.now() + 120_000);
    const periodic = await text(
      dashboard({
        periodic: [
          {
            taskName: "report",
            periodicId: "",
            cron: "*/5 * * * *",
            timezone: "Europe/Paris",
            nextTick: () => next,
          },
          { taskName: "weekly", periodicId: "", cron: "@weekly", timezone: "UTC", nextTick: () => next },
        ],
      }),
      "/periodic",
    );
    const report = /<tr data-task="report" data-periodic-id="">(.*?)<\/tr>/s.exec(periodic)?.[1] ?? "";
    expect(report).toContain("<code>*/5 * * * *</code></td><td>Europe/Paris</td>");
    expect(report).toContain(`datetime="${new Date(tick * 1000).toISOString()}"`);
    expect(report).toContain(`datetime="${next.toISOString()}"`);
    expect(report).toContain(
      `<a href="/jobs/${reportJob}">${reportJob}</a> <span class="status todo">todo</span>`,
    );
    expect(/<tr data-task="weekly" data-periodic-id="">(.*?)<\/tr>/s.exec(periodic)?.[1]).toContain("never");
    expect(/<tr data-task="orphan" data-periodic-id="nightly">(.*?)<\/tr>/s.exec(periodic)?.[1]).toContain(
      "not given",
    );
    expect(() => dashboard({ periodic: [{}] as never })).toThrow(/periodic: an array of the handles/);
  });

  it("locks: keyset pages of 100, held first, each lock on exactly one page", async () => {
    await doingJob(app, "sync", "default", "held:1");
    // 204 free locks, lock-i with i % 3 jobs waiting behind it (the most waiting first).
    await app.connector.query(
      `INSERT INTO "${app.schema}".jobs (queue_name, task_name, lock, args)
       SELECT 'default', 'sync', 'lock-' || lpad(i::text, 3, '0'), '{}'
       FROM generate_series(1, 204) AS i, generate_series(0, 2) AS k WHERE k <= i % 3`,
    );
    const d = dashboard();
    const seen: string[] = [];
    let path = "/locks";
    const pages: string[] = [];
    for (let i = 0; i < 5 && path; i++) {
      const page = await text(d, path);
      pages.push(page);
      seen.push(...[...page.matchAll(/<tr data-lock="([^"]+)">/g)].map((m) => m[1]!));
      path = (/href="([^"]+)" id="locks-next"/.exec(page)?.[1] ?? "").replaceAll("&amp;", "&");
    }
    expect(pages).toHaveLength(3);
    expect(seen).toHaveLength(205);
    expect(new Set(seen).size).toBe(205);
    expect(seen[0]).toBe("held:1");
    // Then by most waiting (3, 2, 1), then by name.
    expect(seen.slice(1, 4)).toEqual(["lock-002", "lock-005", "lock-008"]);
    expect(seen.at(-1)).toBe("lock-204");
    expect(pages[0]).toContain(
      "205 locks in all, held ones first, then those with the most jobs waiting, 100 on this page.",
    );
    expect(pages[0]).not.toContain('id="locks-first"');
    expect(pages[1]).toContain('<a href="/locks" id="locks-first">« First</a>');
    expect(pages[2]).not.toContain('id="locks-next"');
    // A cursor that is not one is the first page.
    expect((await text(d, "/locks?after=nonsense")).match(/<tr data-lock=/g)).toHaveLength(100);
  });

  it("jobs: the queue filter suggests the queues that have jobs (a datalist)", async () => {
    await app.configureTask("send_email", { allowUnknown: true, queue: "emails" }).defer({});
    await failedJob(app, {}, undefined, "crunch");
    await doingJob(app, "report", "reports");
    const page = await text(dashboard(), "/jobs");
    expect(page).toContain('<input name="queue" value="" autocomplete="off" list="queue-names">');
    const names = [
      ...(/<datalist id="queue-names">(.*?)<\/datalist>/s.exec(page)?.[1] ?? "").matchAll(
        /<option value="([^"]+)">/g,
      ),
    ].map((m) => m[1]);
    expect(names).toContain("emails");
    expect(names).toContain("reports");
    expect(names.some((n) => n?.startsWith("q-"))).toBe(true);
    expect(names).toEqual([...names].sort());
  });

  it("overview: read once per change of the activity signature, not once per request", async () => {
    await app.configureTask("send_email", { allowUnknown: true, queue: "emails" }).defer({});
    const d = dashboard({ actions: true, token: TOKEN });
    const todo = (page: string) =>
      /<tr data-queue="emails">.*?data-status="todo">(.*?)<\/td>/s.exec(page)?.[1];
    expect(todo(await text(d, "/"))).toContain(">1</a>");
    const query = vi.spyOn(app.connector, "query");
    try {
      // Nothing changed: only the signature is read.
      expect(todo(await text(d, "/"))).toContain(">1</a>");
      expect(query).toHaveBeenCalledTimes(1);
      // A defer moves the signature: read again.
      const id = await app.configureTask("send_email", { allowUnknown: true, queue: "emails" }).defer({});
      query.mockClear();
      expect(todo(await text(d, "/"))).toContain(">2</a>");
      expect(query.mock.calls.length).toBeGreaterThan(1);
      // An action taken here reads again at once, whatever the signature says.
      const { cookie, csrf } = await session(d, `/jobs/${id}`);
      const cancelled = await d(
        post(`/jobs/${id}/actions`, { csrf, action: "cancel", token: TOKEN }, { cookie }),
      );
      expect(cancelled.status).toBe(303);
      expect(todo(await text(d, "/"))).toContain(">1</a>");
    } finally {
      query.mockRestore();
    }
  });

  it("bulk actions on the selected jobs or a whole filter, guarded like the others", async () => {
    const [f1, f2, f3] = [
      await failedJob(app, {}, undefined, "flaky"),
      await failedJob(app, {}, undefined, "flaky"),
      await failedJob(app, {}, undefined, "flaky"),
    ];
    const solid = await failedJob(app, {}, undefined, "solid");
    const waiting = await app
      .configureTask("later", { allowUnknown: true, queue: "q-bulk" })
      .batchDefer([{}, {}]);
    const d = dashboard({ actions: true, token: TOKEN });
    const { cookie, csrf } = await session(d, "/jobs");
    const page = await text(d, "/jobs?task=flaky");
    expect(page).toContain(`<input type="checkbox" name="ids" value="${f1}"`);
    expect(page).toContain('data-confirm="Retry EVERY finished job that matches this filter? (task=flaky)"');
    // No whole-filter buttons without a filter.
    expect(await text(d, "/jobs")).not.toContain('value="retry:filter"');
    const status = async (id: number) => (await app.jobManager.getJob(id))?.status ?? "deleted";
    const selected: Array<[string, string]> = [
      ["bulk", "retry:selected"],
      ["ids", String(f1)],
      ["ids", String(f2)],
      ["csrf", csrf],
    ];

    const refused = async (request: Request, reason: RegExp) => {
      const response = await d(request);
      expect(response.status).toBe(403);
      expect(await response.text()).toMatch(reason);
    };
    await refused(post("/jobs/bulk", selected, { cookie }), /needs the dashboard token/);
    await refused(post("/jobs/bulk", [...selected, ["token", TOKEN]]), /no CSRF cookie/);
    await refused(
      post("/jobs/bulk", [...selected, ["token", TOKEN]], { cookie, "sec-fetch-site": "cross-site" }),
      /cross-site request/,
    );
    expect([await status(f1), await status(f2)]).toEqual(["failed", "failed"]);

    const done = await d(post("/jobs/bulk", [...selected, ["token", TOKEN]], { cookie }));
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe("/jobs?done=retry&count=2");
    expect([await status(f1), await status(f2), await status(f3)]).toEqual(["todo", "todo", "failed"]);
    expect(await text(d, "/jobs?done=retry&count=2")).toContain('id="notice">Retried 2 jobs.');

    const json = { cookie, accept: "application/json" };
    const bulk = async (fields: Record<string, string>) =>
      (await d(post("/jobs/bulk", { ...fields, csrf, token: TOKEN }, json))).json();
    expect(await bulk({ bulk: "retry:filter", status: "failed", task: "flaky" })).toEqual({
      action: "retry",
      scope: "filter",
      count: 1,
    });
    expect([await status(f3), await status(solid)]).toEqual(["todo", "failed"]);
    expect(await bulk({ bulk: "cancel:filter", queue: "q-bulk" })).toMatchObject({ count: 2 });
    expect(await Promise.all(waiting.map(status))).toEqual(["cancelled", "cancelled"]);
    // Delete takes finished jobs only: the retried (todo) ones of task flaky stay.
    expect(await bulk({ bulk: "delete:filter", task: "flaky" })).toMatchObject({ count: 0 });
    expect(await bulk({ bulk: "delete:filter", queue: "q-bulk" })).toMatchObject({ count: 2 });
    expect(await Promise.all(waiting.map(status))).toEqual(["deleted", "deleted"]);
    expect(await bulk({ bulk: "retry:filter" })).toEqual({
      error: "an action on a whole filter needs a filter: narrow the jobs list first",
    });
    expect(await bulk({ bulk: "retry:selected" })).toEqual({
      error: "no job selected: tick the jobs to act on first",
    });
    expect(await bulk({ bulk: "abort:selected" })).toMatchObject({
      error: expect.stringMatching(/unknown action/),
    });
    expect((await dashboard()(post("/jobs/bulk", { bulk: "retry:filter", task: "solid" }))).status).toBe(403);
    expect(await status(solid)).toBe("failed");
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
