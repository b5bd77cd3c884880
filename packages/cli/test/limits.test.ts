// proc queues limit, proc limits, and defer's flow-control flags.
import { describe, expect, it } from "vitest";
import { proc, skipDb, useTestDatabase } from "./helpers.js";

describe.skipIf(skipDb)("proc queues limit, proc limits, proc defer with limits", () => {
  const t = useTestDatabase();

  it("sets, lists and clears a queue's limits", async () => {
    expect(
      await proc(["queues", "limit", "api", "--max-running", "3", "--rate", "5/1s"], t.env),
    ).toMatchObject({
      code: 0,
      stdout: "queue api: at most 3 running, at most 5 starts per 1000 ms\n",
    });
    const listed = JSON.parse((await proc(["limits", "--json"], t.env)).stdout);
    expect(listed.queues).toEqual([
      {
        queue: "api",
        maxRunning: 3,
        rateLimit: { max: 5, per: 1000 },
        running: 0,
        waiting: 0,
        windowStarts: null,
      },
    ]);
    expect((await proc(["limits"], t.env)).stdout).toMatch(
      /api\s+at most 3 running, at most 5 starts per 1000 ms\s+0\s+0/,
    );
    expect((await proc(["queues", "limit", "api", "--clear"], t.env)).stdout).toBe("queue api: no limits\n");
    expect((await t.db.app.jobManager.listLimits()).queues).toEqual([]);
  });

  it("refuses a rate without a unit, and a limit without a value, with the fix", async () => {
    const noUnit = await proc(["queues", "limit", "api", "--rate", "5/1"], t.env);
    expect(noUnit.code).toBe(2);
    expect(noUnit.stderr).toMatch(/--rate must be starts\/window with a unit, such as 5\/1s/);
    const nothing = await proc(["queues", "limit", "api"], t.env);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/give --max-running N, --rate N\/window, or --clear/);
  });

  it("defers a job with a concurrency key, a rate limit, an expiry and a throttle", async () => {
    const out = await proc(
      [
        "defer",
        "sync",
        '{"id": 1}',
        "--unknown",
        "--concurrency-key",
        "customer:1",
        "--concurrency-limit",
        "2",
        "--rate-limit",
        "10/1m",
        "--rate-key",
        "crm",
        "--expire-in",
        "60",
        "--queueing-lock",
        "sync:1",
        "--unique-for",
        "30",
      ],
      t.env,
    );
    expect(out.code).toBe(0);
    const job = await t.db.app.jobManager.getJob(Number(out.stdout));
    expect(job).toMatchObject({
      concurrencyKey: "customer:1",
      concurrencyLimit: 2,
      rateLimit: { key: "crm", max: 10, per: 60_000 },
    });
    expect(job!.expireAt!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    const listed = JSON.parse((await proc(["limits", "--json"], t.env)).stdout);
    expect(listed.concurrencyKeys).toEqual([{ key: "customer:1", limit: 2, running: 0, waiting: 1 }]);
    const keyless = await proc(["defer", "sync", "--unknown", "--concurrency-key", "k"], t.env);
    expect(keyless.code).toBe(1);
    expect(keyless.stderr).toMatch(/concurrencyKey needs concurrencyLimit/);
  });
});
