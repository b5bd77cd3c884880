/**
 * What `query()` of pg (and of a caller's connection) resolves to: one result, or one per
 * statement when a parameterless text holds several (the simple protocol allows that, and
 * migrations rely on it).
 */
export type DriverResult = { rows: unknown[] } | readonly { rows: unknown[] }[];

/** The rows of the last statement, as psql would show them. */
export function rowsOf<Row>(result: DriverResult): Row[] {
  if (!Array.isArray(result)) return (result as { rows: unknown[] }).rows as Row[];
  return (result.at(-1)?.rows ?? []) as Row[];
}

/** Node reports a failed connect to a host with several addresses as an AggregateError with an empty message. */
export function reasonOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return [...new Set(error.errors.map(reasonOf))].join("; ");
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return error.message || (typeof code === "string" ? code : error.name);
  }
  return String(error);
}
