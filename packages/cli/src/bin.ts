#!/usr/bin/env node
import { main } from "./main.js";

const code = await main(process.argv.slice(2));
// Exit explicitly: a user's module may leave a timer or a connection open, which must not keep
// a finished command alive. Flush first, so output piped to another program is not cut.
await new Promise((resolve) => process.stdout.write("", resolve));
await new Promise((resolve) => process.stderr.write("", resolve));
process.exit(code);
