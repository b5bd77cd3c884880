import { App, consoleLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import { scheduler } from "@proc/scheduler";

export const app = new App({
  connector: new PgConnector({ connectionString: process.env.DATABASE_URL }),
  logger: consoleLogger({ level: "warn" }),
}).use(scheduler());

/** Fails for customers whose name starts with "bad": something to retry from the dashboard. */
export const chargeCard = app.task(
  { name: "charge_card", queue: "billing" },
  async ({ customer, cents }: { customer: string; cents: number }) => {
    if (customer.startsWith("bad")) throw new Error(`the card of ${customer} was declined`);
    return { charged: cents };
  },
);

export const sendReceipt = app.task(
  { name: "send_receipt", queue: "emails" },
  async ({ to }: { to: string }) => ({ sentTo: to }),
);

/** Runs every minute; the dashboard shows its cron and next tick. */
app.periodic(
  { cron: "* * * * *", timezone: "Europe/Paris" },
  app.task({ name: "usage_report", queue: "reports" }, async ({ timestamp }: { timestamp: number }) => ({
    tick: timestamp,
  })),
);
