import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * The one vitest configuration of every package: workspace packages resolve to their
 * TypeScript sources (the "@proc/source" export condition), and the run's migrated
 * template databases are made once by the global setup.
 */
export function procVitestConfig(options: { include?: string[]; templates?: boolean } = {}) {
  const conditions = ["@proc/source"];
  return defineConfig({
    ssr: { resolve: { conditions } },
    resolve: { conditions },
    test: {
      include: options.include ?? ["src/**/*.test.ts", "test/**/*.test.ts"],
      // Packages whose tests use createTestApp() need the templates (default).
      globalSetup:
        options.templates === false ? [] : [fileURLToPath(new URL("./src/global-setup.ts", import.meta.url))],
      testTimeout: 30_000,
      hookTimeout: 120_000,
    },
  });
}
