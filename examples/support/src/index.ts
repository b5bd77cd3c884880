export { type WorkerProcess, killAllWorkers, spawnWorker } from "./children.js";
export { Checks, createDatabase, databaseUrlOrSkip, log, rel, sleep, waitFor } from "./support.js";
export { ExampleRun } from "./support.js";
