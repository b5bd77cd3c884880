import { describe, expect, it } from "vitest";
import { proc, skipDb, useTestDatabase } from "./helpers.js";

describe.skipIf(skipDb)("proc against an empty database", () => {
  const t = useTestDatabase({ migrate: false });

  it("tells to run `proc schema apply`, then applies it", async () => {
    for (const args of [["jobs", "list"], ["queues"], ["defer", "x", "--unknown"], ["healthcheck"]]) {
      const r = await proc(args, t.env);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(
        /^error: the proc schema "proc" is not installed in this database; run `proc schema apply`/,
      );
    }
    const health = await proc(["healthcheck", "--json"], t.env);
    expect(health.code).toBe(1);
    expect(JSON.parse(health.stdout)).toMatchObject({
      ok: false,
      problem: expect.stringContaining("proc schema apply"),
    });

    const status = JSON.parse((await proc(["schema", "status", "--json"], t.env)).stdout);
    expect(status).toMatchObject({ installed: false, applied: [] });
    expect((await proc(["schema", "status"], t.env)).stdout).toBe(
      'schema "proc": not installed; run `proc schema apply`\n',
    );

    const apply = await proc(["schema", "apply", "--quiet"], t.env);
    expect(apply).toMatchObject({ code: 0, stderr: "" });
    expect(apply.stdout).toMatch(/^applied migration\(s\) 1.*; schema "proc" is at migration \d+\n$/);
    const again = await proc(["schema", "apply", "--json"], t.env);
    expect(JSON.parse(again.stdout)).toMatchObject({ schema: "proc", applied: [] });
    expect((await proc(["healthcheck"], t.env)).code).toBe(0);
  });
});

describe("proc without a reachable database", () => {
  it("names host:port and the reason, never the password", async () => {
    const r = await proc(["queues"], { DATABASE_URL: "postgres://someone:s3cret-pw@127.0.0.1:1/db" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("could not connect to Postgres at 127.0.0.1:1");
    expect(r.stderr).toContain("ECONNREFUSED");
    expect(r.stderr).not.toContain("s3cret-pw");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const health = await proc(["healthcheck"], {
      DATABASE_URL: "postgres://someone:s3cret-pw@127.0.0.1:1/db",
    });
    expect(health.code).toBe(1);
  });

  it("asks for a database when there is neither DATABASE_URL nor --app", async () => {
    const r = await proc(["jobs", "list"], { DATABASE_URL: undefined });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "no database to use: set DATABASE_URL (or pass --database-url), or pass --app",
    );
  });

  it("prints the schema SQL with no database at all", async () => {
    const r = await proc(["schema", "sql"], { DATABASE_URL: undefined });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('CREATE TABLE "proc".jobs');
  });
});
