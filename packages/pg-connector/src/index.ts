export { PgConnector } from "./pg-connector.js";
export type { PgConnectorOptions } from "./pg-connector.js";
export type { ReconnectDelays } from "./listener.js";
