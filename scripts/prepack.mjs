// prepack of every published package: refuse npm, then build, then copy the repo's LICENSE in.
// Run by `pnpm pack` / `pnpm publish` in the package's directory.
import { execFileSync } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { name } = JSON.parse(readFileSync("package.json", "utf8"));

// npm pack would publish `workspace:^` ranges verbatim and skip .pnpmfile.cjs's beforePacking
// hook (which removes the @proc/source condition): the package would not install.
if (!(process.env.npm_config_user_agent ?? "").startsWith("pnpm/")) {
  console.error(
    `${name}: pack and publish with pnpm (pnpm pack, pnpm publish, or pnpm changeset publish), not npm: npm keeps "workspace:" ranges, which no registry install can resolve`,
  );
  process.exit(1);
}

// A tarball packed before a build would hold only README and package.json; turbo builds this
// package and what it needs (core's generated SQL module first), from cache when unchanged.
execFileSync(
  join(root, "node_modules/.bin/turbo"),
  ["run", "build", `--filter=${name}`, "--output-logs=errors-only"],
  {
    cwd: root,
    stdio: "inherit",
  },
);
copyFileSync(join(root, "LICENSE"), "LICENSE");
