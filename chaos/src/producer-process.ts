/**
 * The soak's producer: defers `soak` jobs at a fixed rate (SOAK_RATE jobs/s, in batches
 * every 100 ms) until SIGTERM. Each job carries its defer time, so the worker can report
 * enqueue→start latency. Reports its count over IPC every second.
 */
import { App, silentLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";

const rate = Number(process.env.SOAK_RATE ?? 1000);
const TICK_MS = 100;
const app = new App({
  connector: new PgConnector({ connectionString: process.env.DATABASE_URL }),
  logger: silentLogger,
});
await app.open();
const deferrer = app.configureTask("soak", { allowUnknown: true });
let stopping = false;
let deferred = 0;
let errors = 0;
process.on("SIGTERM", () => {
  stopping = true;
});
const report = setInterval(() => process.send?.({ t: "deferred", deferred, errors }), 1000);
const start = Date.now();
let due = 0; // jobs owed so far, at the fixed rate
while (!stopping) {
  due = Math.floor(((Date.now() - start) / 1000) * rate);
  const n = Math.min(due - deferred, rate); // never more than a second's worth at once
  if (n > 0) {
    const t = Date.now();
    try {
      await deferrer.batchDefer(Array.from({ length: n }, () => ({ t })));
      deferred += n;
    } catch {
      errors++;
    }
  }
  await new Promise((r) => setTimeout(r, TICK_MS));
}
clearInterval(report);
process.send?.({ t: "deferred", deferred, errors });
await app.close();
process.stdout.write(`stopped ${deferred}\n`);
process.disconnect?.();
