// pnpm hooks. Only beforePacking: what `pnpm pack` / `pnpm publish` (and `changeset publish`,
// which calls it) put in a published package.json. The repo's manifests carry development-only
// parts that must not reach users:
// - the `@proc/source` export condition points at src/, which is not shipped: a user whose
//   bundler or `node --conditions` happened to name it would import files that do not exist;
// - scripts (prepack would run in the user's install of a git dependency) and devDependencies
//   (they name private workspace packages such as @proc/fixtures).
// `workspace:` ranges are replaced by pnpm itself. scripts/check-packages.mjs proves all of this on
// the packed tarballs.
function withoutSourceCondition(exports) {
  if (typeof exports !== "object" || exports === null) return exports;
  const out = {};
  for (const [key, value] of Object.entries(exports))
    if (key !== "@proc/source") out[key] = withoutSourceCondition(value);
  return out;
}

module.exports = {
  hooks: {
    beforePacking(pkg) {
      if (pkg.exports) pkg.exports = withoutSourceCondition(pkg.exports);
      delete pkg.scripts;
      delete pkg.devDependencies;
      return pkg;
    },
  },
};
