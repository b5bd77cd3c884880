// Worker processes for an example: spawned with the same Node flags as this one
// (tsx, the @proc/source condition), their output prefixed into the timeline, and
// never left behind: every child still alive is SIGKILLed when this process exits.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { log } from "./support.js";

export interface WorkerProcess {
  label: string;
  pid: number;
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly alive: boolean;
}

const children = new Set<WorkerProcess>();

/** Start `node <this process's flags> <script>` with `env` added to the environment. */
export function spawnWorker(label: string, script: URL, env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(script)], {
    cwd: fileURLToPath(new URL("..", script)),
    env: { ...process.env, ...env },
    // The IPC channel lets the worker notice when this process dies (see worker.ts).
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  if (child.pid === undefined) throw new Error(`could not start worker ${label}`);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const worker: WorkerProcess = {
    label,
    pid: child.pid,
    child,
    exited,
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
  };
  children.add(worker);
  void exited.then(() => children.delete(worker));
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    // Drop the logger's own ISO timestamp: the timeline has relative ones.
    createInterface({ input: stream }).on("line", (line) =>
      log(`  ${label} │ ${line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, "")}`),
    );
  }
  return worker;
}

/** SIGKILL every worker process still running. */
export function killAllWorkers(): void {
  for (const { child } of children)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

process.on("exit", killAllWorkers);
