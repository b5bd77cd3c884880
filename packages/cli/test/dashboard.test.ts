// `proc dashboard`: the web dashboard over the real database, read-only on 127.0.0.1 unless
// told otherwise, stopped by SIGTERM.
import { describe, expect, it } from "vitest";
import { skipDb, start, useTestDatabase } from "./helpers.js";

function dashboardUrl(stderr: string): string {
  const match = /serving the dashboard at (http:\/\/[^\s"]+) /.exec(stderr);
  if (!match) throw new Error(`no dashboard URL in:\n${stderr}`);
  return match[1]!;
}

describe.skipIf(skipDb)("proc dashboard", () => {
  const t = useTestDatabase();

  it("serves the dashboard read-only on 127.0.0.1 under --base-path, and stops on SIGTERM", async () => {
    const id = await t.db.app.configureTask("report", { allowUnknown: true, queue: "reports" }).defer({});
    const child = start(["dashboard", "--port", "0", "--base-path", "/ops"], t.env);
    await child.waitForStderr("serving the dashboard at");
    const url = dashboardUrl(child.stderr());
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ops$/);
    expect(child.stderr()).toContain("read-only");
    const overview = await fetch(url);
    expect(overview.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await overview.text()).toContain('data-queue="reports"');
    expect(await (await fetch(`${url}/jobs/${id}`)).text()).not.toContain('id="actions"');
    const post = await fetch(`${url}/jobs/${id}/actions`, { method: "POST" });
    expect(post.status).toBe(403);
    child.kill("SIGTERM");
    expect((await child.done).code).toBe(0);
  });

  it("--actions with PROC_DASHBOARD_TOKEN shows the action form; --actions alone is a usage error", async () => {
    const id = await t.db.app.configureTask("report", { allowUnknown: true }).defer({});
    const child = start(["dashboard", "--port", "0", "--actions"], {
      ...t.env,
      PROC_DASHBOARD_TOKEN: "a-token-of-sixteen-chars",
    });
    await child.waitForStderr("serving the dashboard at");
    expect(child.stderr()).toContain("actions enabled");
    const page = await (await fetch(`${dashboardUrl(child.stderr())}jobs/${id}`)).text();
    expect(page).toContain('id="actions"');
    child.kill("SIGTERM");
    expect((await child.done).code).toBe(0);

    const refused = await start(["dashboard", "--port", "0", "--actions"], t.env).done;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--actions needs --token (or PROC_DASHBOARD_TOKEN)");
  });

  it("--app: the periodic tasks page shows the cron, time zone and next tick of the module's schedules", async () => {
    const child = start(["dashboard", "--port", "0", "--app", "test/fixtures/periodic.ts"], t.env);
    await child.waitForStderr("serving the dashboard at");
    const page = await (await fetch(`${dashboardUrl(child.stderr())}periodic`)).text();
    child.kill("SIGTERM");
    expect((await child.done).code).toBe(0);
    const rows = [...page.matchAll(/<tr data-task="([^"]+)" data-periodic-id="([^"]*)">([\s\S]*?)<\/tr>/g)];
    expect(rows.map(([, task, id]) => `${task}/${id}`)).toEqual([
      "cleanup/quarter",
      "cleanup/weekly",
      "usage_report/",
    ]);
    const row = (task: string) => rows.find(([, t]) => t === task)![3]!;
    expect(row("usage_report")).toContain("<code>0 3 * * *</code>");
    expect(row("usage_report")).toContain("Europe/Paris");
    // The next tick, as the handle computes it: 03:00 in Paris is 01:00 or 02:00 UTC.
    expect(row("usage_report")).toMatch(
      /<time datetime="[^"]+T0[12]:00:00\.000Z"[^>]*>[^<]+<\/time> <span class="muted">\(in /,
    );
    expect(rows.find(([, , id]) => id === "weekly")![3]).toContain("America/New_York");
    expect(page).not.toContain("not given");
  });
});
