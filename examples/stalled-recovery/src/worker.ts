import { Worker } from "@proc/worker";
import { app } from "./app.js";

// A worker process, as you would run it in production (or with `proc --app src/app.ts worker -c 2`).
// Defaults: heartbeat every 5 s; SIGTERM/SIGINT stop it gracefully.
const worker = new Worker(app, { concurrency: 2 });

// Started by the example's main process: if that process dies, stop too (gracefully),
// so that no worker is ever left behind. Unreferenced, so it does not keep us alive.
if (process.send) {
  process.on("disconnect", () => void worker.stop());
  process.channel?.unref();
}

await worker.run(); // resolves after a graceful stop; the process then exits with code 0
