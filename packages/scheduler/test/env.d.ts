// Brings in the fixtures' `ProvidedContext` augmentation, so `inject()` in
// @proc/testing type-checks as part of this package.
import type {} from "@proc/testing/global-setup";
