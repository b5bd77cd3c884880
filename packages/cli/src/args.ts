import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "./errors.js";
import { COMMANDS, type CommandSpec, GLOBAL_OPTIONS, GROUPS, type OptionSpec, envName } from "./spec.js";
import { closest } from "./suggest.js";

export type Env = Readonly<Record<string, string | undefined>>;

export type Parsed =
  | { kind: "help"; path: readonly string[] }
  | { kind: "version" }
  | { kind: "command"; command: CommandSpec; values: Values; positionals: string[] };

interface Given {
  value: string | boolean;
  /** "--concurrency" or "PROC_WORKER_CONCURRENCY": named in error messages. */
  from: string;
}

/** Option values after flags and environment, with typed, validated accessors. */
export class Values {
  readonly #given: ReadonlyMap<string, Given>;
  readonly #command: readonly string[];

  constructor(given: ReadonlyMap<string, Given>, command: readonly string[]) {
    this.#given = given;
    this.#command = command;
  }

  string(name: string): string | undefined {
    const given = this.#given.get(name);
    return typeof given?.value === "string" ? given.value : undefined;
  }

  bool(name: string): boolean {
    return this.#given.get(name)?.value === true;
  }

  int(name: string, min = Number.MIN_SAFE_INTEGER): number | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min)
      throw this.#invalid(name, min > Number.MIN_SAFE_INTEGER ? `an integer ≥ ${min}` : "an integer");
    return n;
  }

  /** A duration in seconds (fractions allowed). */
  seconds(name: string, options: { positive?: boolean } = {}): number | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n) || n < 0 || (options.positive && n === 0))
      throw this.#invalid(name, `a number of seconds ${options.positive ? "> 0" : "≥ 0"}`);
    return n;
  }

  /** A comma-separated list; blanks are dropped. */
  list(name: string): string[] | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const items = text
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (items.length === 0) throw this.#invalid(name, "a comma-separated list of names");
    return items;
  }

  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    if (!(choices as readonly string[]).includes(text))
      throw this.#invalid(name, `one of ${choices.join(", ")}`);
    return text as T;
  }

  date(name: string): Date | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const date = new Date(text);
    if (Number.isNaN(date.getTime()))
      throw this.#invalid(name, "an ISO 8601 date, e.g. 2030-01-31T12:00:00Z");
    return date;
  }

  #invalid(name: string, expected: string): UsageError {
    const given = this.#given.get(name)!;
    return new UsageError(
      `invalid value ${JSON.stringify(given.value)} for ${given.from}: expected ${expected}`,
      this.#command,
    );
  }
}

/**
 * `proc [global options] <command> [subcommand] [options and arguments]`. Global options
 * are accepted before the command and after it; options after it are parsed with
 * node's util.parseArgs against the command's table, then missing ones are read from
 * the environment.
 */
export function parse(argv: readonly string[], env: Env): Parsed {
  const start = commandIndex(argv);
  const prefix = argv.slice(0, start);
  const before = parseStrict(prefix, GLOBAL_OPTIONS, null).values;
  const rest = argv.slice(start);

  if (before.version === true) return { kind: "version" };
  const first = rest[0];
  if (first === undefined || first === "--") {
    if (before.help === true) return { kind: "help", path: [] };
    throw new UsageError("missing command", []);
  }
  if (first === "help") return { kind: "help", path: rest.slice(1).filter((a) => !a.startsWith("-")) };

  if (first in GROUPS && (rest[1] === undefined || rest[1].startsWith("-"))) {
    if (before.help === true || wantsHelp(rest.slice(1))) return { kind: "help", path: [first] };
    const subs = COMMANDS.filter((c) => c.path[0] === first).map((c) => c.path[1]!);
    throw new UsageError(`\`proc ${first}\` needs a subcommand: ${subs.join(", ")}`, [first]);
  }
  const { command, tail } = findCommand(rest);
  if (before.help === true || wantsHelp(tail)) return { kind: "help", path: command.path };

  const options = commandOptions(command);
  const after = parseStrict(tail, options, command.path);
  const given = new Map<string, Given>();
  for (const [values, source] of [
    [before, prefix],
    [after.values, tail],
  ] as const)
    for (const [name, value] of Object.entries(values))
      if (value !== undefined) given.set(name, { value, from: flagName(name, options, source) });
  for (const option of options) {
    if (given.has(option.name)) continue;
    const variable = envName(option, isGlobal(option) ? null : command.path);
    const raw = variable ? env[variable] : undefined;
    if (variable && raw !== undefined) given.set(option.name, fromEnv(option, variable, raw, command.path));
  }
  checkArgs(command, after.positionals);
  return {
    kind: "command",
    command,
    values: new Values(given, command.path),
    positionals: after.positionals,
  };
}

/** Where the command starts: after the global options, whose values are skipped. */
function commandIndex(argv: readonly string[]): number {
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i]!;
    if (arg === "--" || arg === "-" || !arg.startsWith("-")) break;
    const long = arg.startsWith("--");
    const option = long
      ? GLOBAL_OPTIONS.find((o) => o.name === arg.slice(2).split("=")[0])
      : GLOBAL_OPTIONS.find((o) => o.short === arg[1]);
    if (!option) throw unknownOption(arg, GLOBAL_OPTIONS, null);
    const valueInline = long ? arg.includes("=") : arg.length > 2;
    i += option.type === "string" && !valueInline ? 2 : 1;
  }
  return i;
}

function findCommand(rest: readonly string[]): { command: CommandSpec; tail: string[] } {
  const name = rest[0]!;
  // A command that is also the head of subcommands (`proc queues`, `proc queues pause <q>`).
  const sub = COMMANDS.find((c) => c.path.length === 2 && c.path[0] === name && c.path[1] === rest[1]);
  if (sub && !(name in GROUPS)) return { command: sub, tail: rest.slice(2) };
  if (name in GROUPS) {
    const sub = rest[1]!;
    const subs = COMMANDS.filter((c) => c.path[0] === name).map((c) => c.path[1]!);
    const command = COMMANDS.find((c) => c.path[0] === name && c.path[1] === sub);
    if (!command)
      throw new UsageError(`unknown command \`proc ${name} ${sub}\`${didYouMean(sub, subs)}`, [name]);
    return { command, tail: rest.slice(2) };
  }
  const command = COMMANDS.find((c) => c.path.length === 1 && c.path[0] === name);
  if (!command) {
    const names = [...new Set(COMMANDS.map((c) => c.path[0]!)), "help"];
    throw new UsageError(`unknown command "${name}"${didYouMean(name, names)}`, []);
  }
  return { command, tail: rest.slice(1) };
}

function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

export function isGlobal(option: OptionSpec): boolean {
  return GLOBAL_OPTIONS.some((g) => g.name === option.name);
}

/** The command's options plus the global ones; a command's short flag wins over a global one. */
export function commandOptions(command: CommandSpec): OptionSpec[] {
  const shorts = new Set(command.options.map((o) => o.short).filter(Boolean));
  const globals = GLOBAL_OPTIONS.map((o) =>
    o.short && shorts.has(o.short) ? { ...o, short: undefined } : o,
  );
  return [...command.options, ...globals];
}

function parseStrict(
  args: readonly string[],
  options: readonly OptionSpec[],
  command: readonly string[] | null,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const config: ParseArgsConfig["options"] = {};
  for (const o of options) config[o.name] = o.short ? { type: o.type, short: o.short } : { type: o.type };
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: config,
      strict: true,
      allowPositionals: command !== null,
    });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (error) {
    const code = (error as { code?: string }).code;
    const message = (error as Error).message;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const flag = /'([^']+)'/.exec(message)?.[1] ?? message;
      throw unknownOption(flag, options, command);
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && message.includes("ambiguous")) {
      const flag = /'([^']+)'/.exec(message)?.[1] ?? "--option";
      throw new UsageError(
        `${flag} needs a value; for a value starting with "-", write ${flag}=VALUE`,
        command,
      );
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const flag = /'(-[^' ]+)/.exec(message)?.[1] ?? "an option";
      throw new UsageError(
        message.includes("missing") ? `${flag} needs a value` : `${flag} takes no value`,
        command,
      );
    }
    throw error;
  }
}

function unknownOption(
  flag: string,
  options: readonly OptionSpec[],
  command: readonly string[] | null,
): UsageError {
  const where = command?.length ? ` for \`proc ${command.join(" ")}\`` : "";
  const names = options.map((o) => `--${o.name}`);
  const hint = flag.startsWith("--") ? didYouMean(flag.split("=")[0]!, names) : "";
  return new UsageError(`unknown option ${flag}${where}${hint}`, command);
}

function didYouMean(input: string, candidates: readonly string[]): string {
  const near = closest(input, candidates);
  return near.length ? ` (did you mean ${near.map((n) => `"${n}"`).join(" or ")}?)` : "";
}

/** Which spelling of an option the user typed, for error messages. */
function flagName(name: string, options: readonly OptionSpec[], args: readonly string[]): string {
  const short = options.find((o) => o.name === name)?.short;
  return short && args.includes(`-${short}`) && !args.some((a) => a.startsWith(`--${name}`))
    ? `-${short}`
    : `--${name}`;
}

const FALSE = new Set(["", "0", "false", "no", "off"]);
const TRUE = new Set(["1", "true", "yes", "on"]);

function fromEnv(option: OptionSpec, variable: string, raw: string, command: readonly string[]): Given {
  if (option.type === "string") return { value: raw, from: variable };
  if (option.envAnyValue) return { value: raw !== "", from: variable };
  const text = raw.trim().toLowerCase();
  if (TRUE.has(text)) return { value: true, from: variable };
  if (FALSE.has(text)) return { value: false, from: variable };
  throw new UsageError(
    `invalid value ${JSON.stringify(raw)} for ${variable}: expected 1/true/yes or 0/false/no`,
    command,
  );
}

function checkArgs(command: CommandSpec, positionals: readonly string[]): void {
  const missing = command.args.filter((a, i) => a.required && positionals[i] === undefined);
  if (missing.length)
    throw new UsageError(`missing argument <${missing.map((a) => a.name).join("> <")}>`, command.path);
  const extra = positionals.slice(command.args.length);
  if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`, command.path);
}
