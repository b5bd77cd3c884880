import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type DefaultTheme, defineConfig } from "vitepress";
// A plain .mjs module shared with the build scripts.
import { PACKAGES } from "../scripts/packages.mjs";

const REPO_URL = "https://github.com/proc-queue/proc";

/** The API sidebar that TypeDoc (scripts/generate.mjs) wrote, in the docs' package order. */
function apiSidebar(): DefaultTheme.SidebarItem[] {
  const path = fileURLToPath(new URL("../api/typedoc-sidebar.json", import.meta.url));
  if (!existsSync(path)) return [];
  const items = JSON.parse(readFileSync(path, "utf8")) as DefaultTheme.SidebarItem[];
  const rank = (item: DefaultTheme.SidebarItem) => {
    const index = (PACKAGES as string[]).indexOf(String(item.text).replace(/^@proc\//, ""));
    return index < 0 ? PACKAGES.length : index;
  };
  return [...items].sort((a, b) => rank(a) - rank(b));
}

const packagePages: DefaultTheme.SidebarItem[] = (PACKAGES as string[]).map((p) => ({
  text: `@proc/${p}`,
  link: `/packages/${p}`,
}));

const sidebar: DefaultTheme.SidebarItem[] = [
  {
    text: "Introduction",
    items: [
      { text: "What is proc?", link: "/" },
      { text: "Getting started", link: "/guide/getting-started" },
      { text: "Concepts", link: "/guide/concepts" },
    ],
  },
  {
    text: "Guides",
    items: [
      { text: "Tasks and deferring", link: "/guide/tasks" },
      { text: "Retries", link: "/guide/retries" },
      { text: "Periodic tasks", link: "/guide/periodic-tasks" },
      { text: "Flow control", link: "/guide/flow-control" },
      { text: "Stalled jobs", link: "/guide/stalled-jobs" },
      { text: "Deploying workers", link: "/guide/deploying-workers" },
      { text: "PgBouncer", link: "/guide/pgbouncer" },
      { text: "Scaling", link: "/guide/scaling" },
      { text: "Operating the queue", link: "/guide/operating" },
      { text: "Dashboard", link: "/guide/dashboard" },
      { text: "Benchmarks", link: "/guide/benchmarks" },
    ],
  },
  {
    text: "Migrating",
    items: [
      { text: "From graphile-worker", link: "/migrating/graphile-worker" },
      { text: "From pg-boss", link: "/migrating/pg-boss" },
      { text: "From Procrastinate", link: "/migrating/procrastinate" },
    ],
  },
  { text: "Packages", items: packagePages },
  {
    text: "Reference",
    items: [
      { text: "CLI", link: "/reference/cli" },
      { text: "API", link: "/api/" },
    ],
  },
];

// Under /api/, the generated tree (kept off the other pages, which it would make heavy).
const apiPages: DefaultTheme.SidebarItem[] = [
  { text: "← Guides and packages", link: "/guide/getting-started" },
  { text: "API reference", link: "/api/", items: apiSidebar() },
];

export default defineConfig({
  title: "proc",
  description: "A PostgreSQL job queue for Node.js, in TypeScript.",
  base: process.env.DOCS_BASE ?? "/",
  lang: "en-US",
  // Generated fragments are included into pages, never pages of their own.
  srcExclude: ["README.md", "scripts/**", "**/generated/**"],
  // Dead internal links fail the build (VitePress's default); keep it so.
  ignoreDeadLinks: false,
  lastUpdated: false,
  // The local search index is one large chunk; that is expected.
  vite: { build: { chunkSizeWarningLimit: 4096 } },
  themeConfig: {
    nav: [
      { text: "Guide", link: "/guide/getting-started", activeMatch: "^/guide/" },
      { text: "Packages", link: "/packages/core", activeMatch: "^/packages/" },
      { text: "Migrating", link: "/migrating/graphile-worker", activeMatch: "^/migrating/" },
      { text: "CLI", link: "/reference/cli" },
      { text: "API", link: "/api/", activeMatch: "^/api/" },
    ],
    sidebar: { "/api/": apiPages, "/": sidebar },
    outline: { level: [2, 3] },
    search: { provider: "local" },
    socialLinks: [{ icon: "github", link: REPO_URL }],
  },
});
