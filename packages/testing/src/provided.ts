// What the global setup hands to test files (vitest's provide/inject).
declare module "vitest" {
  export interface ProvidedContext {
    procPgTemplate: string | null;
    procPgliteTemplate: string;
  }
}

export {};
