// Brings in the fixtures' `ProvidedContext` augmentation, so `inject()` in
// @proc/fixtures type-checks as part of this package.
import type {} from "@proc/fixtures/global-setup";
