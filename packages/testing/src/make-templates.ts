/**
 * Creates the run's migrated templates and prints their locations as JSON. Run by
 * global-setup.ts in a child process (node --conditions=@proc/source --import tsx),
 * because vitest's global-setup runner does not apply custom export conditions and
 * so cannot load the workspace packages from source.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { PGliteConnector } from "@proc/pglite-connector";
import pg from "pg";
import { pgUrl, withDatabase } from "./backends.js";

const dir = mkdtempSync(join(tmpdir(), "proc-pglite-template-"));
const pglitePath = join(dir, "template.tar.gz");
{
  const connector = new PGliteConnector();
  const app = new App({ connector, logger: silentLogger });
  await app.open();
  await app.migrate();
  const dump = await connector.dumpDataDir();
  writeFileSync(pglitePath, Buffer.from(await dump.arrayBuffer()));
  await app.close();
}

const url = pgUrl();
let pgTemplate: string | null = null;
if (url) {
  pgTemplate = `proc_tpl_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: url });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`cannot reach Postgres at DATABASE_URL for the tests: ${(error as Error).message}`);
  }
  await admin.query(`CREATE DATABASE "${pgTemplate}"`);
  await admin.end();
  const app = new App({
    connector: new PgConnector({ connectionString: withDatabase(url, pgTemplate) }),
    logger: silentLogger,
  });
  await app.open();
  await app.migrate();
  await app.close();
}

process.stdout.write(`${JSON.stringify({ pglitePath, pglDir: dir, pgTemplate })}\n`);
