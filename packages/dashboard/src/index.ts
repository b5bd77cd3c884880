// The public surface of @proc/dashboard, chosen by hand.
export { createDashboard } from "./dashboard.js";
export type { Dashboard } from "./dashboard.js";
export { nodeListener } from "./node.js";
export type { DashboardAction, DashboardOptions } from "./options.js";
export { CONTENT_SECURITY_POLICY } from "./security.js";
