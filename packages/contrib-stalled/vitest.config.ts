import { procVitestConfig } from "../testing/vitest.preset.js";

export default procVitestConfig();
