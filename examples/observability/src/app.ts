import { trace } from "@opentelemetry/api";
import { App, consoleLogger } from "@proc/core";
import { otel } from "@proc/otel";
import { PGliteConnector } from "@proc/pglite-connector";

// "child": each run continues the trace of the request that deferred the job, so one trace
// shows all of it. The default, "link", makes each run a trace of its own, linked.
export const app = new App({
  connector: new PGliteConnector(),
  logger: consoleLogger({ level: "error" }),
}).use(otel({ runSpanParent: "child" }));

const tracer = trace.getTracer("example");

export const sendWelcome = app.task(
  { name: "send_welcome", queue: "emails", retry: { maxAttempts: 3, wait: 50 } },
  async ({ to }: { to: string }, ctx) => {
    // The task's own work appears under its run.
    await tracer.startActiveSpan("smtp.send", async (span) => {
      span.setAttribute("smtp.to", to);
      span.end();
    });
    if (ctx.job.attempts === 1) throw new Error("SMTP server busy");
    return { sent: to };
  },
);
