import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { ChildConfig, ChildMessage, MemoryReport } from "./protocol.js";
import { CHILD_NODE_FLAGS } from "./systems/index.js";

const CHILD_SOURCE = fileURLToPath(new URL("./child.ts", import.meta.url));
const CHILD_OUT_DIR = fileURLToPath(new URL("../dist/child/", import.meta.url));

let childScript: Promise<string> | undefined;

/**
 * The worker child as plain JavaScript, built once per run: proc's sources bundled in
 * (through the `@proc/source` condition, as the tests use them), npm packages left
 * external. The child then runs on bare `node`, as production workers do; under tsx
 * its RSS would include the TypeScript loader and every module compiled in memory.
 * One chunk per system (code splitting), so a child loads only its own system's code.
 */
function buildChild(): Promise<string> {
  childScript ??= build({
    entryPoints: { child: CHILD_SOURCE },
    outdir: CHILD_OUT_DIR,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    conditions: ["@proc/source"],
    logLevel: "warning",
    plugins: [
      {
        name: "npm-external",
        setup(b) {
          // Bare specifiers other than proc's own packages stay imports.
          b.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path.startsWith("@proc/") ? undefined : { path: args.path, external: true },
          );
        },
      },
    ],
  }).then(() => `${CHILD_OUT_DIR}child.js`);
  return childScript;
}

/** The parent's handle on a worker child (see buildChild). */
export class WorkerProcess {
  readonly #child: ChildProcess;
  readonly #failed: Promise<never>;
  readonly #messages = new Map<ChildMessage["type"], Array<(message: ChildMessage) => void>>();
  readonly #jobStarts: Array<{ sentAt: number; at: number }> = [];
  #handled = 0;
  /** Child time just before its worker start call. */
  readonly starting: Promise<number>;
  /** Child time once its worker start call returned. */
  readonly started: Promise<number>;
  /** Child time at which its handlers had run every expected job (drains). */
  readonly handledAll: Promise<number>;
  /** Child time of its first job start ("share" mode). */
  readonly firstJob: Promise<number>;

  private constructor(config: ChildConfig, script: string) {
    this.#child = fork(script, [], {
      execArgv: [...(CHILD_NODE_FLAGS[config.system] ?? []), ...(config.heldSampleMs ? ["--expose-gc"] : [])],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.#failed = new Promise<never>((_, reject) => {
      this.#child.on("message", (message: ChildMessage) => {
        if (message.type === "error") reject(new Error(`${config.system} worker: ${message.message}`));
        else if (message.type === "job-start") this.#jobStarts.push(message);
        else if (message.type === "count") this.#handled = message.handled;
        for (const listener of this.#messages.get(message.type) ?? []) listener(message);
      });
      this.#child.on("exit", (code) => {
        if (code !== 0) reject(new Error(`${config.system} worker exited with code ${code}`));
      });
    });
    // A failure surfaces through whichever promise the caller awaits; never unhandled.
    this.#failed.catch(() => {});
    this.starting = this.#next("starting").then((m) => m.at);
    this.started = this.#next("started").then((m) => m.at);
    this.handledAll = this.#next("handled-all").then((m) => m.at);
    this.firstJob = this.#next("first-job").then((m) => m.at);
    this.#child.send(config);
  }

  static async start(config: ChildConfig): Promise<WorkerProcess> {
    return new WorkerProcess(config, await buildChild());
  }

  /** Jobs its handlers have started so far, as last reported ("share" mode). */
  get handled(): number {
    return this.#handled;
  }

  /** Every job start seen so far (latency runs). */
  get jobStarts(): ReadonlyArray<{ sentAt: number; at: number }> {
    return this.#jobStarts;
  }

  #next<T extends ChildMessage["type"]>(type: T): Promise<Extract<ChildMessage, { type: T }>> {
    const received = new Promise<Extract<ChildMessage, { type: T }>>((resolve) => {
      const listeners = this.#messages.get(type) ?? [];
      listeners.push(resolve as (message: ChildMessage) => void);
      this.#messages.set(type, listeners);
    });
    const settled = Promise.race([received, this.#failed]);
    settled.catch(() => {});
    return settled;
  }

  /** Stop the worker gracefully; resolves with its memory and the jobs it handled. */
  async stop(): Promise<{ memory: MemoryReport; handled: number }> {
    const stopped = this.#next("stopped");
    this.#child.send({ type: "stop" });
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 30_000);
    try {
      const { memory, handled } = await stopped;
      this.#handled = handled;
      return { memory, handled };
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.#child.exitCode === null) this.#child.kill("SIGKILL");
  }
}
