import { AlreadyEnqueued } from "@proc/core";
import { Worker } from "@proc/worker";
import { app, chargeCustomer, sendEmail } from "./app.js";

await app.open();
await app.migrate();
console.log("proc quickstart: an embedded PGlite database, migrated.\n");

// Defer: alone, configured, in a batch.
const welcome = await sendEmail.defer({ to: "alice@example.com", subject: "Welcome" });
await sendEmail.defer({ to: "bob@example.com", subject: "Welcome" });
await sendEmail.configure({ priority: 10 }).defer({ to: "carol@example.com", subject: "Urgent" });
await sendEmail.configure({ scheduleIn: { seconds: 1 } }).defer({ to: "dave@example.com", subject: "Later" });
// A lock runs a customer's charges one at a time, in order.
await chargeCustomer.configure({ lock: "customer:1" }).batchDefer([
  { customerId: 1, cents: 1000 },
  { customerId: 1, cents: 250 },
]);
// A queueing lock keeps a single pending digest.
await sendEmail.configure({ queueingLock: "digest" }).defer({ to: "team@example.com", subject: "Digest" });
try {
  await sendEmail.configure({ queueingLock: "digest" }).defer({ to: "team@example.com", subject: "Digest" });
} catch (error) {
  if (!(error instanceof AlreadyEnqueued)) throw error;
  console.log(`second digest refused: already enqueued (queueing lock "${error.queueingLock}")`);
}

console.log("\nrunning a worker until every job is done:");
const worker = new Worker(app, { concurrency: 4, handleSignals: false });
worker.on("job:retry", ({ job, error }) =>
  console.log(`  ↻  job ${job.id} failed (${(error as Error).message}); retrying`),
);
const running = worker.run();

const outcome = await app.jobManager.waitForJob(welcome, { timeoutMs: 10_000 });
console.log(`  (waitForJob: job ${welcome} ${outcome.status} with ${JSON.stringify(outcome.result)})`);
// Wait until nothing is left to do, including the job scheduled 1 s ahead.
for (;;) {
  const pending = await app.jobManager.listJobs({ status: ["todo", "doing"] });
  if (pending.length === 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
await worker.stop();
await running;

console.log("\nqueues:");
for (const q of await app.jobManager.listQueues())
  console.log(`  ${q.name.padEnd(8)} succeeded=${q.succeeded} failed=${q.failed} todo=${q.todo}`);
const all = await app.jobManager.listJobs();
await app.close();
if (all.some((j) => j.status !== "succeeded")) {
  console.error("some jobs did not succeed");
  process.exit(1);
}
console.log(`\nall ${all.length} jobs succeeded.`);
