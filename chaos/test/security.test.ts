/**
 * Security: schema names are validated, passwords never reach logs or errors, and a
 * least-privilege role (no DDL) can defer, run workers and recover stalled jobs, with
 * exactly the GRANTs documented in chaos/README.md.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { App, type Connector, isProcError, type Logger } from "@proc/core";
import { retryStalledJobs } from "@proc/contrib-stalled";
import { PgConnector } from "@proc/pg-connector";
import { scheduler } from "@proc/scheduler";
import { Worker } from "@proc/worker";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { adminQuery, adminUrl, CHAOS_DIR, createChaosDatabase, sleep, until } from "../src/harness.js";

function recordingLogger(lines: string[]): Logger {
  const at = (level: string) => (fields: Record<string, unknown>, msg?: string) => {
    lines.push(`${level} ${msg ?? ""} ${inspect(fields, { depth: 8 })}`);
  };
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

const stubConnector = { query: async () => [] } as unknown as Connector;

describe("schema names", () => {
  it("are validated: anything but a plain lowercase identifier is InvalidOptions", () => {
    for (const bad of [
      'proc"; DROP SCHEMA public; --',
      "Proc",
      "",
      "1proc",
      "pro c",
      "pg_catalog.x",
      "a".repeat(64),
    ]) {
      let error: unknown;
      try {
        new App({ connector: stubConnector, schema: bad });
      } catch (e) {
        error = e;
      }
      expect(isProcError(error, "INVALID_OPTIONS"), `schema ${JSON.stringify(bad)}`).toBe(true);
    }
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 70 }), (schema) => {
        try {
          expect(new App({ connector: stubConnector, schema }).schema).toBe(schema);
          // Accepted: a safe identifier.
          expect(schema).toMatch(/^[a-z_][a-z0-9_]*$/);
        } catch (error) {
          expect(isProcError(error, "INVALID_OPTIONS"), String(error)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe.skipIf(!adminUrl())("credentials and privileges (pg)", () => {
  it("a connection string's password never appears in errors or logs", async () => {
    const password = `Pw-${randomBytes(8).toString("hex")}`;
    const role = `proc_chaos_pw_${randomBytes(4).toString("hex")}`;
    await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    const lines: string[] = [];
    const errors: unknown[] = [];
    try {
      const server = new URL(adminUrl()!);
      const url = (host: string, port: string, database: string, pw = password) => {
        const u = new URL(server.toString());
        u.username = role;
        u.password = pw;
        u.hostname = host;
        u.port = port;
        u.pathname = `/${database}`;
        return u.toString();
      };
      const attempts = [
        url(server.hostname, server.port, "postgres", `wrong-${password}`), // wrong password (trust may accept it)
        url(server.hostname, server.port, `no_such_db_${randomBytes(3).toString("hex")}`), // refused by the server
        url("127.0.0.1", "1", "postgres"), // nothing listens
        url("no-such-host.invalid", "5432", "postgres"), // unresolvable
      ];
      for (const connectionString of attempts) {
        const logger = recordingLogger(lines);
        const app = new App({
          connector: new PgConnector({
            connectionString,
            logger,
            poolConfig: { connectionTimeoutMillis: 3000 },
          }),
          logger,
        });
        try {
          await app.open();
          // It connected (a trusting server): use it, then make it fail mid-flight.
          await app.connector.query("SELECT 1");
          await app.connector.query("SELECT * FROM no_such_table").catch((e) => errors.push(e));
          const worker = new Worker(app, { handleSignals: false, logger });
          await worker.run().catch((e) => errors.push(e));
        } catch (error) {
          errors.push(error);
        } finally {
          await app.close();
        }
      }
      expect(errors.length).toBeGreaterThanOrEqual(3);
      for (const error of errors) {
        expect(isProcError(error), String(error)).toBe(true);
        const text = [
          String(error),
          (error as Error).stack,
          inspect(error, { depth: 8 }),
          JSON.stringify(error),
        ].join("\n");
        expect(text).not.toContain(password);
      }
      expect(lines.join("\n")).not.toContain(password);
    } finally {
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  it("the documented least-privilege role (no DDL) defers, runs workers and retries stalled jobs", {
    timeout: 60_000,
  }, async () => {
    const readme = readFileSync(join(CHAOS_DIR, "README.md"), "utf8");
    const script = /<!-- grants:start -->\s*```sql\n([\s\S]*?)```\s*<!-- grants:end -->/.exec(readme)?.[1];
    expect(script, "the GRANT script in chaos/README.md").toBeTruthy();
    const role = `proc_app_${randomBytes(4).toString("hex")}`;
    const db = await createChaosDatabase("grants");
    const owner = new App({
      connector: new PgConnector({ connectionString: db.url }),
      logger: recordingLogger([]),
    });
    let app: App | undefined;
    try {
      await owner.open();
      await owner.connector.query(
        script!.replace(/\bproc_app\b/g, role).replace(/\bmydb\b/g, `"${db.name}"`),
      );
      const u = new URL(db.url);
      u.username = role;
      u.password = "change-me";
      const lines: string[] = [];
      app = new App({
        connector: new PgConnector({ connectionString: u.toString() }),
        logger: recordingLogger(lines),
      })
        .use(scheduler())
        .use(retryStalledJobs({ cron: "* * * * * *", heartbeatSeconds: 1 }));
      app.task({ name: "work" }, async ({ n }: { n: number }) => n * 2);
      await app.open();
      // No DDL.
      await expect(app.connector.query("CREATE TABLE proc.evil (id int)")).rejects.toMatchObject({
        sqlState: "42501",
      });
      await expect(app.connector.query("DROP TABLE proc.jobs")).rejects.toMatchObject({ sqlState: "42501" });
      await app.checkSchema();

      // A job claimed by a worker that then died (its heartbeat a minute old).
      const stalledId = await app.configureTask("work").defer({ n: 1 });
      const deadWorker = await app.jobManager.registerWorker({
        name: "dead",
        host: "h",
        pid: 1,
        queues: null,
        concurrency: 1,
      });
      expect((await app.jobManager.fetchJobs(deadWorker, null, 1)).map((j) => j.id)).toEqual([stalledId]);
      await owner.connector.query("UPDATE proc.workers SET last_heartbeat_at = now() - interval '1 minute'");

      const ids = await app.configureTask("work").batchDefer([{ n: 2 }, { n: 3 }]);
      const worker = new Worker(app, { handleSignals: false, heartbeatInterval: 300, pollInterval: 200 });
      const run = worker.run();
      try {
        for (const id of [...ids, stalledId])
          await until(async () => (await app!.jobManager.getJob(id))?.status === "succeeded", {
            timeoutMs: 20_000,
            what: `job ${id} as ${role}: ${lines.filter((l) => l.startsWith("error")).join("\n")}`,
          });
        expect((await app.jobManager.getJob(stalledId))?.stalledCount).toBe(1);
        await app.jobManager.cancelJob(
          await app
            .configureTask("work")
            .configure({ scheduleIn: { hours: 1 } })
            .defer({ n: 0 }),
        );
        await sleep(100);
      } finally {
        await worker.stop();
        await run;
      }
      expect(lines.filter((l) => /permission denied/i.test(l))).toEqual([]);
    } finally {
      await app?.close();
      await owner.close();
      await db.drop();
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    }
  });
});
