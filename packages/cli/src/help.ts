import { commandOptions, isGlobal } from "./args.js";
import { COMMANDS, type CommandSpec, GLOBAL_OPTIONS, GROUPS, type OptionSpec, envName } from "./spec.js";

export function usageLine(path: readonly string[]): string {
  const command = COMMANDS.find((c) => c.path.join(" ") === path.join(" "));
  if (command) {
    const args = command.args.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`));
    return ["usage: proc", ...command.path, ...args, "[options]"].join(" ");
  }
  const group = path[0];
  if (group && group in GROUPS) {
    const subs = COMMANDS.filter((c) => c.path[0] === group).map((c) => c.path[1]);
    return `usage: proc ${group} ${subs.join(" | ")} [options]`;
  }
  return "usage: proc [options] <command> [arguments]";
}

function signature(command: CommandSpec): string {
  return [...command.path, ...command.args.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`))].join(
    " ",
  );
}

function optionLines(options: readonly OptionSpec[], command: readonly string[] | null): string[] {
  const left = options.map((o) => {
    const flag = `${o.short ? `-${o.short}, ` : "    "}--${o.name}`;
    return o.type === "string" ? `${flag} <${o.value ?? "value"}>` : flag;
  });
  const width = Math.max(...left.map((l) => l.length));
  return options.map((o, i) => {
    const env = envName(o, isGlobal(o) || command === null ? null : command);
    const extras = [o.default ? `default: ${o.default}` : "", env ? `env ${env}` : ""].filter(Boolean);
    return `  ${left[i]!.padEnd(width)}  ${o.help}${extras.length ? ` [${extras.join("; ")}]` : ""}`;
  });
}

function commandList(commands: readonly CommandSpec[]): string[] {
  const width = Math.max(...commands.map((c) => signature(c).length));
  return commands.map((c) => `  ${signature(c).padEnd(width)}  ${c.summary}`);
}

const FOOTER = [
  "Exit codes: 0 ok; 1 error (the message names the problem and the fix); 2 usage error.",
  "The database: the connector of the --app module's app, or DATABASE_URL for commands that need no tasks.",
];

/** Help text for `proc`, a group (`proc jobs`) or a command, generated from the spec tables. */
export function helpText(path: readonly string[]): string {
  const command = COMMANDS.find((c) => c.path.join(" ") === path.join(" "));
  if (command) {
    const lines = [usageLine(command.path), "", command.summary + "."];
    if (command.details) lines.push("", command.details);
    const options = commandOptions(command);
    const own = options.filter((o) => !isGlobal(o));
    const globals = options.filter(isGlobal);
    if (own.length) lines.push("", "Options:", ...optionLines(own, command.path));
    lines.push("", "Global options:", ...optionLines(globals, null), "", ...FOOTER);
    return lines.join("\n");
  }
  const group = path[0];
  if (group && group in GROUPS) {
    return [
      usageLine([group]),
      "",
      `${GROUPS[group]}.`,
      "",
      "Commands:",
      ...commandList(COMMANDS.filter((c) => c.path[0] === group)),
      "",
      `Run \`proc ${group} <command> --help\` for its options.`,
    ].join("\n");
  }
  return [
    "proc: run and operate a proc job queue (PostgreSQL).",
    "",
    usageLine([]),
    "",
    "Commands:",
    ...commandList(COMMANDS),
    "",
    "Global options (before or after the command):",
    ...optionLines(GLOBAL_OPTIONS, null),
    "",
    "Every option can also be set with the environment variable shown; a flag wins over it.",
    "Run `proc <command> --help` for a command's options.",
    ...FOOTER,
  ].join("\n");
}
