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
});
