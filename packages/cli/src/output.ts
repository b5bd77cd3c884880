import type { JobStatus } from "@proc/core";

/** Where the CLI writes: process.stdout/stderr, or a test's capture. */
export interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export type Style = "bold" | "dim" | "red" | "green" | "yellow" | "cyan" | "magenta";

const CODES: Record<Style, number> = {
  bold: 1,
  dim: 2,
  red: 31,
  green: 32,
  yellow: 33,
  cyan: 36,
  magenta: 35,
};

export const STATUS_STYLE: Record<JobStatus, Style> = {
  todo: "cyan",
  doing: "yellow",
  succeeded: "green",
  failed: "red",
  cancelled: "dim",
  aborted: "magenta",
};

export interface Cell {
  text: string;
  style?: Style;
}

export interface Column {
  header: string;
  /** Numbers read better right-aligned. */
  align?: "right";
}

/** Lines to one stream, with colours only for a terminal and only without NO_COLOR. */
export class Printer {
  readonly #stream: Stream;
  readonly colors: boolean;

  constructor(stream: Stream, noColor: boolean) {
    this.#stream = stream;
    this.colors = stream.isTTY === true && !noColor;
  }

  paint(text: string, style: Style | undefined): string {
    return style && this.colors ? `\x1b[${CODES[style]}m${text}\x1b[0m` : text;
  }

  line(text = ""): void {
    this.#stream.write(`${text}\n`);
  }

  json(value: unknown): void {
    this.line(JSON.stringify(value, null, 2));
  }

  /** Columns padded to their widest cell; styles are applied after padding so escapes don't count. */
  table(columns: readonly Column[], rows: ReadonlyArray<ReadonlyArray<Cell | string>>): void {
    const cells = rows.map((row) => row.map((c) => (typeof c === "string" ? { text: c } : c)));
    const widths = columns.map((col, i) =>
      Math.max(col.header.length, ...cells.map((r) => r[i]?.text.length ?? 0)),
    );
    const render = (row: readonly Cell[]) =>
      row
        .map((cell, i) => {
          const width = widths[i]!;
          const padded = columns[i]?.align === "right" ? cell.text.padStart(width) : cell.text.padEnd(width);
          return this.paint(padded, cell.style);
        })
        .join("  ")
        .trimEnd();
    this.line(render(columns.map((c) => ({ text: c.header, style: "bold" as const }))));
    for (const row of cells) this.line(render(row));
  }
}

/** A date as `2030-01-31 12:00:00Z`: sortable, unambiguous, and narrow enough for a table. */
export function formatDate(date: Date | null): string {
  return date ? `${date.toISOString().slice(0, 19).replace("T", " ")}Z` : "-";
}

/** Long JSON in a table cell is cut; `proc jobs show` prints it whole. */
export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
