import type { Session } from "../session.js";

export async function schemaApply(s: Session): Promise<number> {
  const app = await s.open("database", { checkSchema: false });
  const applied = await app.migrate();
  const status = await app.schemaStatus();
  if (s.json) s.out.json({ schema: status.schema, applied, latest: status.latest });
  else if (applied.length)
    s.out.line(
      `applied migration(s) ${applied.join(", ")}; schema "${status.schema}" is at migration ${status.latest}`,
    );
  else s.out.line(`schema "${status.schema}" is already at migration ${status.latest}; nothing to apply`);
  return 0;
}

export async function schemaStatus(s: Session): Promise<number> {
  const app = await s.open("database", { checkSchema: false });
  const status = await app.schemaStatus();
  if (s.json) {
    s.out.json(status);
    return 0;
  }
  const name = `schema "${status.schema}"`;
  if (!status.installed) s.out.line(`${name}: not installed; run \`proc schema apply\``);
  else if (status.pending.length)
    s.out.line(
      `${name}: applied ${status.applied.join(", ")}; pending ${status.pending.join(", ")}; run \`proc schema apply\``,
    );
  else s.out.line(`${name}: up to date (migration ${status.latest}; applied ${status.applied.join(", ")})`);
  return 0;
}

export async function schemaSql(s: Session): Promise<number> {
  const app = await s.app("none");
  s.out.line(app.schemaSql().trimEnd());
  return 0;
}
