// proc queues pause|resume, and the paused column of proc queues.
import { describe, expect, it } from "vitest";
import { proc, skipDb, useTestDatabase } from "./helpers.js";

describe.skipIf(skipDb)("proc queues pause and resume", () => {
  const t = useTestDatabase();

  it("pauses and resumes a queue, stored in the database, and lists it", async () => {
    await t.db.app.configureTask("x", { allowUnknown: true, queue: "emails" }).defer({});
    expect(await proc(["queues", "pause", "emails"], t.env)).toMatchObject({
      code: 0,
      stdout: "queue emails paused\n",
    });
    expect((await proc(["queues", "pause", "emails"], t.env)).stdout).toBe(
      "queue emails was already paused\n",
    );
    expect((await proc(["queues", "pause", "later"], t.env)).code).toBe(0);
    expect(await t.db.app.jobManager.listPausedQueues()).toMatchObject([
      { queue: "emails" },
      { queue: "later" },
    ]);
    const listed = JSON.parse((await proc(["queues", "--json"], t.env)).stdout) as Array<{
      name: string;
      paused: boolean;
      todo: number;
    }>;
    expect(listed).toEqual([
      expect.objectContaining({ name: "emails", paused: true, todo: 1 }),
      expect.objectContaining({ name: "later", paused: true, todo: 0 }),
    ]);
    expect((await proc(["queues"], t.env)).stdout).toMatch(/emails\s+1\s+0\s+0\s+0\s+0\s+0\s+paused/);
    const resumed = await proc(["queues", "resume", "emails", "--json"], t.env);
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout)).toEqual({ queue: "emails", paused: false, changed: true });
    expect((await t.db.app.jobManager.listPausedQueues()).map((p) => p.queue)).toEqual(["later"]);
    expect((await proc(["queues", "pause"], t.env)).code).toBe(2);
  });
});
