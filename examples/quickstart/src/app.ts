import { App, consoleLogger } from "@proc/core";
import { PGliteConnector } from "@proc/pglite-connector";

// An embedded Postgres in this process: nothing to install or start. Swap in
// `new PgConnector({ connectionString: process.env.DATABASE_URL })` for production.
export const app = new App({
  connector: new PGliteConnector(),
  logger: consoleLogger({ level: "error" }),
});

export const sendEmail = app.task(
  { name: "send_email", queue: "emails", retry: { maxAttempts: 3, wait: 100 } },
  async ({ to, subject }: { to: string; subject: string }, ctx) => {
    // A flaky mail server: the first attempt to bob fails, the retry succeeds.
    if (to === "bob@example.com" && ctx.job.attempts === 1) throw new Error("mail server busy");
    console.log(`  ✉  sent "${subject}" to ${to} (job ${ctx.job.id}, attempt ${ctx.job.attempts})`);
    return { deliveredAt: new Date().toISOString() };
  },
);

export const chargeCustomer = app.task(
  { name: "charge_customer", queue: "billing" },
  async ({ customerId, cents }: { customerId: number; cents: number }, ctx) => {
    console.log(`  💳 charged customer ${customerId} ${(cents / 100).toFixed(2)} € (lock ${ctx.job.lock})`);
    return { charged: cents };
  },
);
