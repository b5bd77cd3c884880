import { Worker } from "@proc/worker";
import { app } from "./app.js";

// One of the example's three worker processes. Each runs the scheduler (a worker
// service of the scheduler plugin) besides fetching jobs. SIGTERM stops it gracefully.
const worker = new Worker(app);

// Started by the example's main process: if that process dies, stop too (gracefully),
// so that no worker is ever left behind. Unreferenced, so it does not keep us alive.
if (process.send) {
  process.on("disconnect", () => void worker.stop());
  process.channel?.unref();
}

await worker.run(); // resolves after a graceful stop; the process then exits with code 0
