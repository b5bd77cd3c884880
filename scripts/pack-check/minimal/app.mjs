// A PGlite app: the CLI runs it with no @proc/pg-connector installed.
import { App, silentLogger } from "@proc/core";
import { PGliteConnector } from "@proc/pglite-connector";

export const app = new App({ connector: new PGliteConnector(), logger: silentLogger });
