export { PGliteConnector } from "./pglite-connector.js";
export type { PGliteConnectorOptions } from "./pglite-connector.js";
