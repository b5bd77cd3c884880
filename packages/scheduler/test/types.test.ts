import { App, type Connector } from "@proc/core";
import { expect, it } from "vitest";
import { scheduler } from "../src/index.js";

// Compile-time checks of app.periodic's signature: `tsc --noEmit` fails if an
// accepted form stops compiling or a rejected form (@ts-expect-error) starts to.
const app = new App({ connector: { query: async () => [] } as unknown as Connector }).use(scheduler());

function signatures() {
  const cron = "* * * * *";
  const untyped = app.task({ name: "untyped" }, async () => {});
  const json = app.task({ name: "json" }, async (args) => args.anything);
  const tick = app.task({ name: "tick" }, async (_args: { timestamp: number }) => {});
  const optional = app.task({ name: "optional" }, async (_args: { timestamp: number; to?: string }) => {});
  const withArgs = app.task({ name: "args" }, async (_args: { timestamp: number; to: string }) => {});
  const stringly = app.task({ name: "stringly" }, async (_args: { timestamp: string }) => {});

  app.periodic({ cron }, untyped);
  app.periodic({ cron }, json);
  app.periodic({ cron }, tick);
  app.periodic({ cron }, optional);
  app.periodic({ cron, args: { to: "a" } }, withArgs);
  // @ts-expect-error: the task needs args.to
  app.periodic({ cron }, withArgs);
  // @ts-expect-error: args.to must be a string
  app.periodic({ cron, args: { to: 1 } }, withArgs);
  // @ts-expect-error: the timestamp is a number
  app.periodic({ cron }, stringly);
}

it("types app.periodic (checked by tsc)", () => {
  expect(typeof signatures).toBe("function");
  expect(typeof app.periodic).toBe("function");
});
