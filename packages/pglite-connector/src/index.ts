export { PGliteConnector } from "./pglite-connector.js";
export type { PGliteConnectorOptions, PGliteInstance, PGliteSession } from "./pglite-connector.js";
