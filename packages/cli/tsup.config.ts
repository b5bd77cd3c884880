import { defineConfig } from "tsup";

export default defineConfig({
  // bin.ts keeps its shebang line; tsup marks the output executable.
  entry: ["src/bin.ts", "src/index.ts"],
  format: ["esm"],
  dts: { entry: "src/index.ts" },
  clean: true,
  sourcemap: true,
  target: "node20",
});
