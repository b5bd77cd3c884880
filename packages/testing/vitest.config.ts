import { procVitestConfig } from "../fixtures/vitest.preset.js";

// No fixture templates: these tests make theirs through the package under test.
export default procVitestConfig({ templates: false });
