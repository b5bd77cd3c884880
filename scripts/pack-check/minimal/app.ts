// A TypeScript app: the CLI needs tsx to load it, and says so when it is not installed.
import { App } from "@proc/core";
import { PGliteConnector } from "@proc/pglite-connector";

export const app: App = new App({ connector: new PGliteConnector() });
