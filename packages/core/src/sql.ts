import { InvalidOptions } from "./errors.js";
import {
  queries as rawQueries,
  migrations as rawMigrations,
  schemaSql as rawSchemaSql,
} from "./generated/sql.js";

export type QueryName = keyof typeof rawQueries;

/** Schema names are identifiers we splice into SQL, so only a safe subset is accepted. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,49}$/;

export function assertSchemaName(schema: string): void {
  if (!SCHEMA_NAME.test(schema)) {
    throw new InvalidOptions("App", [
      `schema: ${JSON.stringify(schema)} is not a valid schema name; use lowercase letters, digits and _ (at most 50 characters, not starting with a digit)`,
    ]);
  }
}

/** The NOTIFY channel of a schema: new jobs and abort requests. "<channel>_done" carries finished jobs. */
export function channelFor(schema: string): string {
  return schema === "proc" ? "proc" : `proc_${schema}`;
}

function render(sql: string, schema: string): string {
  return sql.replaceAll("{{schema}}", `"${schema}"`).replaceAll("{{channel}}", channelFor(schema));
}

/** Every SQL text of one schema, rendered once. */
export class SqlCatalog {
  readonly schema: string;
  readonly channel: string;
  readonly queries: Readonly<Record<QueryName, string>>;

  constructor(schema: string) {
    assertSchemaName(schema);
    this.schema = schema;
    this.channel = channelFor(schema);
    const rendered = {} as Record<QueryName, string>;
    for (const [name, sql] of Object.entries(rawQueries)) rendered[name as QueryName] = render(sql, schema);
    this.queries = rendered;
  }

  schemaSql(): string {
    return render(rawSchemaSql, this.schema);
  }

  migrations(): Array<{ version: number; name: string; sql: string }> {
    return rawMigrations.map((m) => ({ ...m, sql: render(m.sql, this.schema) }));
  }
}

export const LATEST_MIGRATION = rawMigrations.length;
