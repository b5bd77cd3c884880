import { describe, expect, it } from "vitest";
import { main } from "../src/index.js";
import type { Stream } from "../src/output.js";
import { COMMANDS, GLOBAL_OPTIONS, envName } from "../src/spec.js";
import { createTestDatabase, skipDb } from "./helpers.js";

function capture(isTTY = false): Stream & { text: string } {
  const stream = {
    text: "",
    isTTY,
    write(chunk: string) {
      stream.text += chunk;
      return true;
    },
  };
  return stream;
}

async function run(argv: string[], env: Record<string, string> = {}, tty = false) {
  const stdout = capture(tty);
  const stderr = capture(tty);
  const code = await main(argv, { env, stdout, stderr, cwd: process.cwd() });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe("usage errors exit 2 with a usage line", () => {
  it.each([
    [[], "missing command", "usage: proc [options] <command>"],
    [["jbos"], 'unknown command "jbos" (did you mean "jobs"?)', "usage: proc [options] <command>"],
    [["jobs"], "`proc jobs` needs a subcommand: list, show, retry, cancel", "usage: proc jobs list | show"],
    [["jobs", "lst"], 'unknown command `proc jobs lst` (did you mean "list"?)', "usage: proc jobs"],
    [["defer"], "missing argument <task>", "usage: proc defer <task> [json-args] [options]"],
    [["defer", "a", "{}", "extra"], 'unexpected argument "extra"', "usage: proc defer"],
    [
      ["defer", "a", "--qeue", "x"],
      'unknown option --qeue for `proc defer` (did you mean "--queue"?)',
      "usage: proc defer",
    ],
    [["--frobnicate", "queues"], "unknown option --frobnicate", "usage: proc [options]"],
    [["defer", "a", "--queue"], "--queue needs a value", "usage: proc defer"],
    [["queues", "--json=yes"], "--json takes no value", "usage: proc queues"],
    [["defer", "a", "--priority", "-5"], "write --priority=VALUE", "usage: proc defer"],
    [
      ["defer", "a", "--priority", "high"],
      'invalid value "high" for --priority: expected an integer',
      "usage: proc defer",
    ],
    [
      ["defer", "a", "--at", "tomorrow"],
      'invalid value "tomorrow" for --at: expected an ISO 8601 date',
      "usage: proc defer",
    ],
    [
      ["defer", "a", "--at", "2030-01-01", "--in", "5"],
      "--at and --in are alternatives",
      "usage: proc defer",
    ],
    [["jobs", "list", "--status", "done"], 'unknown status "done" for --status', "usage: proc jobs list"],
    [
      ["jobs", "list", "--limit", "0"],
      'invalid value "0" for --limit: expected an integer ≥ 1',
      "usage: proc jobs list",
    ],
    [["worker", "--poll-interval", "0"], "expected a number of seconds > 0", "usage: proc worker"],
    [
      ["queues", "--log-format", "xml"],
      'invalid value "xml" for --log-format: expected one of json, pretty',
      "usage: proc queues",
    ],
  ])("proc %j", async (argv, message, usage) => {
    const r = await run(argv as string[]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    const [first, second, third] = r.stderr.trimEnd().split("\n");
    expect(first).toMatch(/^error: /);
    expect(first).toContain(message);
    expect(second).toContain(usage);
    expect(third).toMatch(/^run `proc .*--help` for more$/);
  });

  it("names the environment variable a bad value came from", async () => {
    const r = await run(["worker"], { PROC_WORKER_CONCURRENCY: "many" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid value "many" for PROC_WORKER_CONCURRENCY: expected an integer ≥ 1');
    const b = await run(["queues"], { PROC_JSON: "maybe" });
    expect(b.stderr).toContain('invalid value "maybe" for PROC_JSON: expected 1/true/yes or 0/false/no');
  });
});

describe("help", () => {
  it("lists every command, and documents every option with its environment variable", async () => {
    const top = await run(["--help"]);
    expect(top.code).toBe(0);
    for (const c of COMMANDS) expect(top.stdout).toContain(c.path.join(" "));
    for (const o of GLOBAL_OPTIONS) {
      expect(top.stdout).toContain(`--${o.name}`);
      const env = envName(o, null);
      if (env) expect(top.stdout).toContain(`env ${env}`);
    }
    for (const c of COMMANDS) {
      const help = await run([...c.path, "--help"]);
      expect(help.code).toBe(0);
      for (const o of c.options) {
        expect(help.stdout).toContain(`--${o.name}`);
        expect(help.stdout).toContain(`env ${envName(o, c.path)}`);
      }
    }
  });

  it("answers `proc help <command>`, `proc <group> --help` and --version", async () => {
    expect((await run(["help", "worker"])).stdout).toContain("env PROC_WORKER_CONCURRENCY");
    expect((await run(["help", "defer"])).stdout).toContain("usage: proc defer <task> [json-args] [options]");
    expect((await run(["jobs", "--help"])).stdout).toContain("jobs cancel <id>");
    expect((await run(["--version"])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it("gives the worker -q for --queues and keeps --quiet", async () => {
    const help = (await run(["worker", "--help"])).stdout;
    expect(help).toMatch(/-q, --queues <a,b>/);
    expect(help).toMatch(/\n {6}--quiet /);
  });
});

describe.skipIf(skipDb)("tables in a terminal", () => {
  it("are coloured in a terminal, plain with NO_COLOR or --no-color", async () => {
    const db = await createTestDatabase();
    try {
      await db.app.configureTask("t", { allowUnknown: true }).defer({});
      const coloured = await run(["jobs", "list"], { DATABASE_URL: db.url }, true);
      expect(coloured.code).toBe(0);
      expect(coloured.stdout).toContain("\x1b[1mID");
      expect(coloured.stdout).toContain("\x1b[36mtodo");
      // Padding is computed on the text, so columns still line up around escapes.
      const plain = await run(["jobs", "list"], { DATABASE_URL: db.url, NO_COLOR: "1" }, true);
      expect(plain.stdout).not.toContain("\x1b[");
      const escapes = new RegExp(`${String.fromCharCode(27)}\\[\\d+m`, "g");
      expect(plain.stdout).toBe(coloured.stdout.replace(escapes, ""));
      const flag = await run(["jobs", "list", "--no-color"], { DATABASE_URL: db.url }, true);
      expect(flag.stdout).not.toContain("\x1b[");
    } finally {
      await db.drop();
    }
  });
});
