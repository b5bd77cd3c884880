import type { Connector, Queryable } from "./connector.js";
import { SchemaMissing, SchemaOutdated, SchemaTooNew } from "./errors.js";
import type { Logger } from "./logger.js";
import { LATEST_MIGRATION, type SqlCatalog } from "./sql.js";

/**
 * Applies pending migrations. Safe when many processes migrate at once: everything
 * happens in one transaction that first takes a transaction-scoped advisory lock, so
 * the others wait, then find nothing left to do. Refuses a database whose schema is
 * newer than this code (an old process must not "fix" a newer schema).
 */
export async function migrate(connector: Connector, sql: SqlCatalog, logger: Logger): Promise<number[]> {
  return connector.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`proc:migrate:${sql.schema}`]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS "${sql.schema}"`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS "${sql.schema}".migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const applied = await appliedVersions(tx, sql.schema);
    const newest = Math.max(0, ...applied);
    if (newest > LATEST_MIGRATION) throw new SchemaTooNew(sql.schema, newest, LATEST_MIGRATION);
    const done: number[] = [];
    for (const m of sql.migrations()) {
      if (applied.includes(m.version)) continue;
      logger.info(
        { action: "apply_migration", version: m.version, name: m.name },
        `applying migration ${m.version} (${m.name})`,
      );
      await tx.query(m.sql);
      await tx.query(`INSERT INTO "${sql.schema}".migrations (version, name) VALUES ($1, $2)`, [
        m.version,
        m.name,
      ]);
      done.push(m.version);
    }
    return done;
  });
}

async function appliedVersions(q: Queryable, schema: string): Promise<number[]> {
  const rows = await q.query<{ version: number }>(
    `SELECT version FROM "${schema}".migrations ORDER BY version`,
  );
  return rows.map((r) => Number(r.version));
}

export interface SchemaStatus {
  schema: string;
  installed: boolean;
  applied: number[];
  pending: number[];
  latest: number;
}

export async function schemaStatus(q: Queryable, sql: SqlCatalog): Promise<SchemaStatus> {
  const [exists] = await q.query<{ exists: boolean }>("SELECT to_regclass($1) IS NOT NULL AS exists", [
    `"${sql.schema}".migrations`,
  ]);
  const applied = exists?.exists ? await appliedVersions(q, sql.schema) : [];
  const pending = sql
    .migrations()
    .map((m) => m.version)
    .filter((v) => !applied.includes(v));
  return { schema: sql.schema, installed: applied.length > 0, applied, pending, latest: LATEST_MIGRATION };
}

/** Throws a typed error saying what to run when the schema is missing, outdated or too new. */
export async function checkSchema(q: Queryable, sql: SqlCatalog): Promise<SchemaStatus> {
  const status = await schemaStatus(q, sql);
  if (!status.installed) throw new SchemaMissing(sql.schema);
  const newest = Math.max(...status.applied);
  if (newest > LATEST_MIGRATION) throw new SchemaTooNew(sql.schema, newest, LATEST_MIGRATION);
  if (status.pending.length) throw new SchemaOutdated(sql.schema, status.pending);
  return status;
}
