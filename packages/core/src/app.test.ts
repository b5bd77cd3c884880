import { describe, expect, it } from "vitest";
import { App } from "./app.js";
import type { Connector } from "./connector.js";
import { InvalidOptions } from "./errors.js";

/** A connector that records what reaches it, and answers every query with no rows. */
function recordingConnector(name: string, calls: string[]): Connector {
  return {
    kind: "fake",
    query: async (sql: string) => {
      calls.push(`${name}: ${sql.split("\n")[0]}`);
      return [];
    },
    transaction: async (fn) => fn({ query: async () => [] }),
    listen: async () => ({ close: async () => {} }),
    reserve: () => ({ query: async () => [], close: async () => {} }),
    wrapConnection: (connection) => ({
      query: async (sql, params) => (await connection.query(sql, params as unknown[])).rows as never,
    }),
    open: async () => {
      calls.push(`${name}: open`);
    },
    close: async () => {
      calls.push(`${name}: close`);
    },
  };
}

describe("replaceConnector", () => {
  it("puts the app, its tasks and its job manager on the new connector, and returns the old one", async () => {
    const calls: string[] = [];
    const original = recordingConnector("original", calls);
    const replacement = recordingConnector("replacement", calls);
    const app = new App({ connector: original });
    const task = app.task({ name: "t" }, async () => {});

    expect(app.replaceConnector(replacement)).toBe(original);
    expect(app.connector).toBe(replacement);

    await app.open();
    await task.defer({}).catch(() => {}); // the fake returns no id; only where it went matters
    await app.jobManager.listJobs();
    await app.close();
    expect(calls.filter((c) => c.startsWith("original"))).toEqual([]);
    expect(calls).toEqual([
      "replacement: open",
      expect.stringMatching(/^replacement: SELECT string_agg\(id::text/),
      'replacement: SELECT * FROM "proc".jobs',
      "replacement: close",
    ]);

    // And back: the swap is reversible, so a test can hand the app its connector again.
    expect(app.replaceConnector(original)).toBe(replacement);
    await app.jobManager.listJobs();
    expect(calls.at(-1)).toBe('original: SELECT * FROM "proc".jobs');
  });

  it("refuses while the app is open (a worker holds it open too), and accepts once it is closed", async () => {
    const calls: string[] = [];
    const app = new App({ connector: recordingConnector("a", calls) });
    const other = recordingConnector("b", calls);
    await app.open();
    await app.open(); // nested: still open after one close
    await app.close();
    expect(() => app.replaceConnector(other)).toThrow(InvalidOptions);
    expect(() => app.replaceConnector(other)).toThrow(/the app is open: close it first/);
    await app.close();
    expect(() => app.replaceConnector(other)).not.toThrow();
    expect(app.connector).toBe(other);
  });

  it("refuses while the app is opening", async () => {
    let finishOpening!: () => void;
    const slow = {
      ...recordingConnector("slow", []),
      open: () =>
        new Promise<void>((resolve) => {
          finishOpening = resolve;
        }),
    };
    const app = new App({ connector: slow });
    const opening = app.open();
    expect(() => app.replaceConnector(recordingConnector("b", []))).toThrow(/the app is open/);
    finishOpening();
    await opening;
    await app.close();
  });

  it("refuses something that is not a connector, naming what it expects", () => {
    const app = new App({ connector: recordingConnector("a", []) });
    expect(() => app.replaceConnector({} as Connector)).toThrow(/connector: expected a Connector/);
    expect(() => app.replaceConnector(undefined as unknown as Connector)).toThrow(InvalidOptions);
  });
});
