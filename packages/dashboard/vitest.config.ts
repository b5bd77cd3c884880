import { procVitestConfig } from "../fixtures/vitest.preset.js";

export default procVitestConfig();
