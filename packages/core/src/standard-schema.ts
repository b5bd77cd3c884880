/**
 * The Standard Schema interface (https://standardschema.dev), declared here so that
 * any validator that implements it (zod, valibot, arktype) can type and check task
 * args without proc depending on one of them.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | {
      readonly issues: ReadonlyArray<{
        readonly message: string;
        readonly path?: ReadonlyArray<PropertyKey | { key: PropertyKey }> | undefined;
      }>;
    };

export type InferInput<S> = S extends StandardSchemaV1<infer I, unknown> ? I : never;
export type InferOutput<S> = S extends StandardSchemaV1<unknown, infer O> ? O : never;

/** Validates, returning the output value or the list of issues as readable strings. */
export async function runSchema<O>(
  schema: StandardSchemaV1<unknown, O>,
  value: unknown,
): Promise<{ ok: true; value: O } | { ok: false; issues: string[] }> {
  const result = await schema["~standard"].validate(value);
  if (!result.issues) return { ok: true, value: result.value };
  return {
    ok: false,
    issues: result.issues.map((issue) => {
      const path = issue.path
        ?.map((p) => (typeof p === "object" && p !== null && "key" in p ? p.key : p))
        .map(String)
        .join(".");
      return path ? `${path}: ${issue.message}` : issue.message;
    }),
  };
}
