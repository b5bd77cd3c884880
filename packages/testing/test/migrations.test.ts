import {
  App,
  type Connector,
  InvalidOptions,
  LATEST_MIGRATION,
  type Queryable,
  SchemaMissing,
  SchemaOutdated,
  SchemaTooNew,
  silentLogger,
} from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { PGliteConnector } from "@proc/pglite-connector";
import {
  type BackendName,
  type TestApp,
  backends,
  createTestApp,
  createTestDatabase,
  pgUrl,
  withDatabase,
} from "@proc/testing";
import { readFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ALL_VERSIONS = Array.from({ length: LATEST_MIGRATION }, (_, i) => i + 1);

/** An empty database on the test server (pg only), dropped by `drop()`. */
async function emptyPgDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const url = pgUrl()!;
  const name = `proc_empty_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(url, name),
    async drop() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

const newApp = (connector: Connector, schema?: string) =>
  new App({ connector, logger: silentLogger, ...(schema ? { schema } : {}) });

/** What migrate() adds besides the schema: its ledger table (and the table's row type, index, constraint). */
const LEDGER = new Set(["migrations", "migrations_pkey", "_migrations"]);

/**
 * Everything the schema defines, read from pg_catalog: namespaces, relations, columns
 * (type, default, nullability, order), indexes, constraints, functions (full source),
 * types and enum labels, sequences, triggers, views, comments and privileges. Objects of
 * `schema` are renamed to "proc" (and its NOTIFY channel to proc's) so that two schema
 * names can be compared; the migration ledger is left out.
 */
async function catalogue(
  q: Queryable,
  namespaces: string[],
  schema = "proc",
): Promise<Record<string, unknown[]>> {
  const queries: Record<string, string> = {
    relations: `
      SELECT n.nspname AS ns, c.relname AS name, c.relkind::text AS kind, c.relpersistence::text AS persistence,
             c.relacl::text AS acl, obj_description(c.oid, 'pg_class') AS comment, c.relrowsecurity AS rls
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY ($1::text[]) ORDER BY 1, 2`,
    columns: `
      SELECT n.nspname AS ns, c.relname AS rel, a.attname AS name,
             row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
             format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
             pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity::text AS identity,
             a.attgenerated::text AS generated, co.collname AS collation,
             col_description(c.oid, a.attnum) AS comment
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
      WHERE n.nspname = ANY ($1::text[]) AND a.attnum > 0 AND NOT a.attisdropped
        AND c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
      ORDER BY 1, 2, 4`,
    indexes: `
      SELECT n.nspname AS ns, t.relname AS rel, c.relname AS name, pg_get_indexdef(i.indexrelid) AS def,
             i.indisprimary AS is_primary, i.indisunique AS is_unique
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY ($1::text[]) ORDER BY 1, 2, 3`,
    constraints: `
      SELECT n.nspname AS ns, coalesce(t.relname, ty.typname) AS rel, co.conname AS name,
             co.contype::text AS type, pg_get_constraintdef(co.oid) AS def,
             co.condeferrable AS deferrable, co.condeferred AS deferred, co.convalidated AS validated
      FROM pg_constraint co
      JOIN pg_namespace n ON n.oid = co.connamespace
      LEFT JOIN pg_class t ON t.oid = co.conrelid
      LEFT JOIN pg_type ty ON ty.oid = co.contypid
      WHERE n.nspname = ANY ($1::text[]) ORDER BY 1, 2, 3`,
    functions: `
      SELECT n.nspname AS ns, p.proname AS name, pg_get_function_identity_arguments(p.oid) AS args,
             p.prokind::text AS kind, pg_get_functiondef(p.oid) AS def, p.proacl::text AS acl,
             obj_description(p.oid, 'pg_proc') AS comment
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = ANY ($1::text[]) AND p.prokind <> 'a' ORDER BY 1, 2, 3`,
    types: `
      SELECT n.nspname AS ns, t.typname AS name, t.typtype::text AS type,
             (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)::text FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels,
             CASE WHEN t.typbasetype <> 0 THEN format_type(t.typbasetype, t.typtypmod) END AS base,
             t.typnotnull AS not_null, t.typdefault AS default, obj_description(t.oid, 'pg_type') AS comment
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = ANY ($1::text[]) ORDER BY 1, 2`,
    sequences: `
      SELECT n.nspname AS ns, c.relname AS name, format_type(s.seqtypid, NULL) AS type,
             s.seqstart::text AS start, s.seqincrement::text AS increment, s.seqmin::text AS min,
             s.seqmax::text AS max, s.seqcache::text AS cache, s.seqcycle AS cycle,
             (SELECT t.relname || '.' || a.attname FROM pg_depend d
              JOIN pg_class t ON t.oid = d.refobjid
              JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
              LIMIT 1) AS owned_by
      FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY ($1::text[]) ORDER BY 1, 2`,
    triggers: `
      SELECT n.nspname AS ns, c.relname AS rel, tg.tgname AS name, pg_get_triggerdef(tg.oid) AS def,
             tg.tgenabled::text AS enabled
      FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY ($1::text[]) AND NOT tg.tgisinternal ORDER BY 1, 2, 3`,
    views: `
      SELECT n.nspname AS ns, c.relname AS name, pg_get_viewdef(c.oid) AS def
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY ($1::text[]) AND c.relkind IN ('v', 'm') ORDER BY 1, 2`,
    policies: `
      SELECT n.nspname AS ns, c.relname AS rel, p.polname AS name, p.polcmd::text AS cmd,
             pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
      FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY ($1::text[]) ORDER BY 1, 2, 3`,
  };
  const rename = (value: unknown): unknown => {
    if (typeof value !== "string" || schema === "proc") return value;
    // The NOTIFY channels first ('proc_<schema>' and 'proc_<schema>_done', always quoted
    // literals), then the schema as a whole identifier (names are [a-z0-9_]).
    return value.replaceAll(`'proc_${schema}`, "'proc").replace(new RegExp(`\\b${schema}\\b`, "g"), "proc");
  };
  const out: Record<string, unknown[]> = {};
  for (const [kind, text] of Object.entries(queries)) {
    const rows = await q.query<Record<string, unknown>>(text, [namespaces]);
    out[kind] = rows
      .filter((r) => !LEDGER.has(String(r.name)) && !LEDGER.has(String(r.rel)))
      .map((r) =>
        Object.fromEntries(
          Object.entries(r).map(([k, v]) => [k, rename(typeof v === "bigint" ? String(v) : v)]),
        ),
      );
  }
  return out;
}

const userNamespaces = async (q: Queryable): Promise<string[]> =>
  (
    await q.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace
       WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1`,
      [],
    )
  ).map((r) => r.nspname);

function expectSameCatalogue(
  fromMigrations: Record<string, unknown[]>,
  fromSchema: Record<string, unknown[]>,
) {
  // Compared kind by kind so that a failure names what differs.
  for (const kind of Object.keys(fromSchema)) expect(fromMigrations[kind], kind).toEqual(fromSchema[kind]);
  // And it is not vacuous.
  expect(fromSchema.functions!.length).toBeGreaterThan(5);
  expect(fromSchema.indexes!.length).toBeGreaterThan(5);
  expect(fromSchema.columns!.length).toBeGreaterThan(20);
}

describe("migrations equal the schema file", () => {
  it.runIf(backends().includes("pg"))("on pg: two fresh databases, whole catalogue", async () => {
    const [migrated, fromFile] = await Promise.all([emptyPgDatabase(), emptyPgDatabase()]);
    const a = newApp(new PgConnector({ connectionString: migrated.url }));
    const b = newApp(new PgConnector({ connectionString: fromFile.url }));
    try {
      await Promise.all([a.open(), b.open()]);
      expect(await a.migrate()).toEqual(ALL_VERSIONS);
      await b.connector.query(b.schemaSql());
      const namespaces = await userNamespaces(a.connector);
      // Nothing is created outside proc's schema.
      expect(namespaces).toEqual(await userNamespaces(b.connector));
      expect(namespaces).toContain("proc");
      expectSameCatalogue(await catalogue(a.connector, namespaces), await catalogue(b.connector, namespaces));
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([migrated.drop(), fromFile.drop()]);
    }
  });

  it("on PGlite: migrations in one schema, the schema file in another, and the template's proc", async () => {
    // A fresh PGlite instance costs seconds; the run's template was made by migrate() on a
    // fresh instance already (src/make-templates.ts, which fails the run if that breaks), so
    // a clone of it holds all three sides here, in three schemas.
    const db = await createTestDatabase("pglite");
    const connector = db.connector();
    const migrated = newApp(connector, "from_migrations");
    const fromFile = newApp(connector, "schema_file");
    try {
      await migrated.open();
      await fromFile.open();
      expect(await userNamespaces(connector)).toEqual(["proc", "public"]);
      expect(await migrated.migrate()).toEqual(ALL_VERSIONS);
      await connector.query(fromFile.schemaSql());
      expect(await userNamespaces(connector)).toEqual(["from_migrations", "proc", "public", "schema_file"]);
      const expected = await catalogue(connector, ["schema_file"], "schema_file");
      expectSameCatalogue(await catalogue(connector, ["from_migrations"], "from_migrations"), expected);
      expectSameCatalogue(await catalogue(connector, ["proc"]), expected);
    } finally {
      await db.drop();
    }
  });

  it("schemaSql() renders every placeholder, quoting the schema name", () => {
    const app = newApp(new PGliteConnector(), "my_jobs");
    const text = app.schemaSql();
    expect(text).not.toContain("{{");
    expect(text).toContain('CREATE SCHEMA IF NOT EXISTS "my_jobs"');
    expect(text).toContain("'proc_my_jobs'");
  });
});

describe.each(backends())("migrate and checkSchema on %s", (backend: BackendName) => {
  let t: TestApp;
  const extraApps: App[] = [];
  beforeAll(async () => {
    t = await createTestApp(backend);
  });
  afterAll(async () => {
    // Apps sharing the test connector are not closed (that would close it under the
    // others); dropping the database closes it.
    await t.dispose();
  });
  /** Another app on the test database, in another schema. */
  const onSameDatabase = async (schema: string): Promise<App> => {
    const app = newApp(t.app.connector, schema);
    await app.open();
    extraApps.push(app);
    return app;
  };

  it("migrate() is idempotent", async () => {
    expect(await t.app.migrate()).toEqual([]);
    expect(await t.app.migrate()).toEqual([]);
    const status = await t.app.checkSchema();
    expect(status).toEqual({
      schema: "proc",
      installed: true,
      applied: ALL_VERSIONS,
      pending: [],
      latest: LATEST_MIGRATION,
    });
    expect(await t.app.schemaStatus()).toEqual(status);
  });

  it("checkSchema on a database without the schema throws SchemaMissing saying `proc schema apply`", async () => {
    const app = await onSameDatabase("not_installed");
    expect(await app.schemaStatus()).toEqual({
      schema: "not_installed",
      installed: false,
      applied: [],
      pending: ALL_VERSIONS,
      latest: LATEST_MIGRATION,
    });
    const error = await app.checkSchema().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaMissing);
    expect(error).toMatchObject({ code: "SCHEMA_MISSING", schema: "not_installed" });
    expect((error as Error).message).toContain("proc schema apply");
    // Nothing was created by looking.
    expect(
      await t.app.connector.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", ["not_installed"]),
    ).toEqual([]);
  });

  it("a ledger newer than the code: SchemaTooNew from migrate() and checkSchema(); an older one: SchemaOutdated", async () => {
    const app = await onSameDatabase("too_new");
    expect(await app.migrate()).toEqual(ALL_VERSIONS);
    const future = LATEST_MIGRATION + 1;
    await app.connector.query(
      `INSERT INTO "too_new".migrations (version, name) VALUES ($1, 'from_the_future')`,
      [future],
    );
    for (const attempt of [() => app.migrate(), () => app.checkSchema()]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SchemaTooNew);
      expect(error).toMatchObject({
        code: "SCHEMA_TOO_NEW",
        databaseVersion: future,
        codeVersion: LATEST_MIGRATION,
      });
      expect((error as Error).message).toMatch(/upgrade/);
    }

    // Forget the latest migration: with one migration only, the ledger is then empty,
    // which reads as no schema at all.
    await app.connector.query(`DELETE FROM "too_new".migrations WHERE version >= $1`, [LATEST_MIGRATION]);
    const outdated = await app.checkSchema().catch((e: unknown) => e);
    if (LATEST_MIGRATION > 1) {
      expect(outdated).toBeInstanceOf(SchemaOutdated);
      expect(outdated).toMatchObject({ code: "SCHEMA_OUTDATED", pending: [LATEST_MIGRATION] });
    } else {
      expect(outdated).toBeInstanceOf(SchemaMissing);
    }
    expect((outdated as Error).message).toContain("proc schema apply");
  });

  it("concurrent migrate() calls apply each migration once", async () => {
    if (backend === "pg") {
      const db = await emptyPgDatabase();
      const apps = Array.from({ length: 5 }, () => newApp(new PgConnector({ connectionString: db.url })));
      try {
        await Promise.all(apps.map((a) => a.open()));
        const results = await Promise.all(apps.map((a) => a.migrate()));
        expect(results.filter((r) => r.length > 0)).toEqual([ALL_VERSIONS]);
        expect(results.filter((r) => r.length === 0)).toHaveLength(4);
        for (const a of apps) await a.checkSchema();
        const ledger = await apps[0]!.connector.query("SELECT version FROM proc.migrations ORDER BY version");
        expect(ledger.map((r) => r.version)).toEqual(ALL_VERSIONS);
        // And the schema works.
        const id = await apps[1]!.configureTask("t", { allowUnknown: true }).defer({});
        expect(await apps[2]!.jobManager.getJob(id)).toMatchObject({ status: "todo" });
      } finally {
        await Promise.all(apps.map((a) => a.close()));
        await db.drop();
      }
    } else {
      // One PGlite session: the calls queue on its transaction mutex.
      const app = await onSameDatabase("concurrent");
      const results = await Promise.all([app.migrate(), app.migrate(), app.migrate()]);
      expect(results.flat()).toEqual(ALL_VERSIONS);
      await app.checkSchema();
    }
  });

  it("a custom schema works end to end, apart from proc's", async () => {
    const app = await onSameDatabase("jobs_x");
    expect(app.schema).toBe("jobs_x");
    expect(app.jobManager.channel).toBe("proc_jobs_x");
    await expect(app.checkSchema()).rejects.toBeInstanceOf(SchemaMissing);
    expect(await app.migrate()).toEqual(ALL_VERSIONS);
    await app.checkSchema();

    const notifications: string[] = [];
    const listener = await app.connector.listen({
      channels: [app.jobManager.channel],
      onNotification: (n) => notifications.push(n.payload),
    });
    try {
      const task = app.task({ name: "custom", queue: "cq" }, () => {});
      const id = await task.defer({ a: 1 });
      const worker = await app.jobManager.registerWorker({
        name: "w",
        host: "h",
        pid: 1,
        queues: null,
        concurrency: 1,
      });
      const [job] = await app.jobManager.fetchJobs(worker, ["cq"], 10);
      expect(job).toMatchObject({ id, task: "custom", args: { a: 1 }, status: "doing", run: 1 });
      const waiting = app.jobManager.waitForJob(id, { timeoutMs: 20_000 });
      await app.jobManager.completeJobs([{ id, run: job!.run, result: "ok" }]);
      expect(await waiting).toMatchObject({ status: "succeeded", result: "ok" });

      // The job lives in jobs_x, not in proc.
      expect(await t.app.connector.query('SELECT id FROM "jobs_x".jobs')).toHaveLength(1);
      expect(await t.app.jobManager.listJobs({ task: "custom" })).toEqual([]);
      const [{ count }] = (await t.app.connector.query<{ count: number }>(
        "SELECT count(*)::integer AS count FROM proc.jobs",
      )) as [{ count: number }];
      expect(count).toBe(0);
      // Its NOTIFY channel is its own.
      await new Promise((r) => setTimeout(r, 50));
      expect(notifications.some((p) => JSON.parse(p).queue === "cq")).toBe(true);
    } finally {
      await listener.close();
    }
  });

  it("migration 2 upgrades a database with jobs in flight; old workers' _v1 calls keep working and number their runs", async () => {
    const schema = "upgrade_from_1";
    const app = await onSameDatabase(schema);
    const q = <Row = Record<string, unknown>>(text: string, params?: unknown[]) =>
      app.connector.query<Row>(text.replaceAll("{s}", `"${schema}"`), params);
    // The database as migrate() left it at version 1 (the ledger as migrate() makes it).
    const initial = readFileSync(
      new URL("../../core/sql/migrations/0001_initial.sql", import.meta.url),
      "utf8",
    )
      .replaceAll("{{schema}}", `"${schema}"`)
      .replaceAll("{{channel}}", `proc_${schema}`);
    await app.connector.transaction(async (tx) => {
      await tx.query(initial);
      await tx.query(
        `CREATE TABLE "${schema}".migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      await tx.query(`INSERT INTO "${schema}".migrations (version, name) VALUES (1, 'initial')`);
    });
    expect(await app.checkSchema().catch((e: unknown) => e)).toBeInstanceOf(SchemaOutdated);

    // An old worker at work: three jobs, two of them claimed.
    await q(
      `SELECT {s}.defer_jobs_v1(ARRAY['q'], ARRAY['t'], ARRAY[0], ARRAY[NULL::text], ARRAY[NULL::text],
                                '[{}, {}, {}]'::jsonb, ARRAY[NULL::timestamptz])`,
    );
    const [{ id: oldWorker }] = (await q<{ id: string }>(
      "SELECT {s}.register_worker_v1('old', 'h', 1, NULL, 1) AS id",
    )) as [{ id: string }];
    const claimedBefore = await q<{ id: string }>("SELECT id FROM {s}.fetch_jobs_v1($1, NULL, 2)", [
      oldWorker,
    ]);
    const [a, b, c] = (await q<{ id: string }>("SELECT id FROM {s}.jobs ORDER BY id")).map((r) =>
      Number(r.id),
    ) as [number, number, number];
    expect(claimedBefore.map((r) => Number(r.id))).toEqual([a, b]);

    expect(await app.migrate()).toEqual(ALL_VERSIONS.slice(1));
    await app.checkSchema();
    // Claims made before runs were numbered are run 0.
    const runs = async () =>
      (
        await q<{ id: string; status: string; run: number }>(
          "SELECT id, status, run FROM {s}.jobs ORDER BY id",
        )
      ).map((r) => [Number(r.id), r.status, r.run]);
    expect(await runs()).toEqual([
      [a, "doing", 0],
      [b, "doing", 0],
      [c, "todo", 0],
    ]);

    // The old worker still completes its job and beats as before.
    expect(
      (
        await q<{ id: string }>(
          "SELECT id FROM {s}.complete_jobs_v1($1, ARRAY[$2::bigint], NULL, false) AS id",
          [oldWorker, a],
        )
      ).map((r) => Number(r.id)),
    ).toEqual([a]);
    expect(await q("SELECT * FROM {s}.heartbeat_worker_v1($1)", [oldWorker])).toEqual([
      { worker_found: true, abort_job_ids: [] },
    ]);
    // A new recovery pass fences the pre-migration claim by its run (0).
    const stalled = (await app.jobManager.getJob(b))!;
    expect(stalled).toMatchObject({ status: "doing", run: 0 });
    expect(await app.jobManager.retryJob(stalled)).toMatchObject({ status: "todo", stalledCount: 1 });
    expect(await app.jobManager.retryJob(stalled)).toBeNull();
    // The old worker's claims are numbered from now on, so the new API fences them too.
    const claimedAfter = await q<{ id: string }>("SELECT id FROM {s}.fetch_jobs_v1($1, NULL, 10)", [
      oldWorker,
    ]);
    expect(claimedAfter.map((r) => Number(r.id))).toEqual([b, c]);
    expect(await runs()).toEqual([
      [a, "succeeded", 0],
      [b, "doing", 1],
      [c, "doing", 1],
    ]);
    expect(await app.jobManager.completeJobs([{ id: c, run: 0, result: null }])).toEqual([]);
    expect(await app.jobManager.completeJobs([{ id: c, run: 1, result: null }])).toEqual([c]);
  });

  it.each(["bad-name", 'x"; drop', "", "Upper", "1abc", "a".repeat(51), "jobs.x", " jobs"])(
    "rejects the schema name %j with InvalidOptions",
    (schema) => {
      expect(() => new App({ connector: t.app.connector, schema })).toThrow(InvalidOptions);
    },
  );
});
