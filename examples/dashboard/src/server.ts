// The service: its own API under /api, and the dashboard beside it under /admin/jobs, with
// actions on behind a token (the host's own auth could do it instead: `authorize`).
import { createDashboard } from "@proc/dashboard";
import { Hono } from "hono";
import { app, chargeCard, sendReceipt } from "./app.js";

export const DASHBOARD_TOKEN = process.env.PROC_DASHBOARD_TOKEN ?? "example-dashboard-token-0123";

export const dashboard = createDashboard(app, {
  basePath: "/admin/jobs",
  actions: true,
  token: DASHBOARD_TOKEN,
});

export const api = new Hono();

api.post("/api/orders", async (c) => {
  const { customer, cents } = await c.req.json<{ customer: string; cents: number }>();
  const charge = await chargeCard.defer({ customer, cents });
  const receipt = await sendReceipt.defer({ to: `${customer}@example.com` });
  return c.json({ charge, receipt }, 201);
});

api.all("/admin/jobs", (c) => dashboard(c.req.raw));
api.all("/admin/jobs/*", (c) => dashboard(c.req.raw));
