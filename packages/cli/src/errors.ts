/**
 * The CLI's two failure kinds, translated to exit codes at the edge (main.ts):
 * a usage error exits 2 with a usage line, a user error exits 1 with one line
 * naming the problem and the fix.
 */

/** Unknown command or flag, missing or extra argument, malformed flag value. */
export class UsageError extends Error {
  /** The command whose usage to show, when known. */
  readonly command: readonly string[] | null;
  constructor(message: string, command: readonly string[] | null = null) {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** A problem the user can fix: the message says how. */
export class CliError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CliError";
  }
}
