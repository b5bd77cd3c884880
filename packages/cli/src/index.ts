// The public surface of @proc/cli: the command as a function, for embedding and scripting.
export { main } from "./main.js";
export type { MainOptions } from "./main.js";
export type { Stream } from "./output.js";
