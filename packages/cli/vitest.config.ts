import { procVitestConfig } from "../fixtures/vitest.preset.js";

// The CLI tests make their own databases and spawn the CLI from source.
export default procVitestConfig({ templates: false });
