import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The cache directory of these tests' migrated database, shared by the test files (the
 * first one migrates it, the others load it), apart from a user's own cache.
 */
export const cacheDir = join(tmpdir(), `proc-testing-selftest-${process.getuid?.() ?? "user"}`);
