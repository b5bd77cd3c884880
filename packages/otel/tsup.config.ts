import { defineConfig } from "tsup";
import base from "../../tsup.base.js";

// Two entry points: the plugin (API only) and ./prometheus (loads the metrics SDK).
export default defineConfig({ ...(base as object), entry: ["src/index.ts", "src/prometheus.ts"] });
