import { JOB_STATUSES, type App, type JobStatus } from "@proc/core";
import { type Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { LIVE_JS, STYLE_CSS } from "./assets.js";
import { html } from "./html.js";
import { LiveFeed } from "./live.js";
import { ACTIONS, type DashboardAction, type DashboardOptions, resolveOptions } from "./options.js";
import { type JobsFilter, type PageContext, jobPage, jobsPage, messagePage, overviewPage } from "./pages.js";
import {
  CSRF_FIELD,
  SECURITY_HEADERS,
  authorizationReason,
  crossSiteReason,
  csrfCookie,
  csrfReason,
  csrfToken,
  newNonce,
  nonceFromCookie,
} from "./security.js";

/** A standard fetch handler, plus `close()` to end the live streams (and their LISTEN). */
export interface Dashboard {
  (request: Request): Promise<Response>;
  /** End every live stream and stop listening. The app stays open: it is yours. */
  close(): Promise<void>;
  /** The path it is mounted at, without a trailing slash ("" for "/"). */
  readonly basePath: string;
}

const KEEPALIVE_MS = 15_000;
const DONE: Record<DashboardAction, string> = {
  retry: "Retried: the job is waiting to run again.",
  cancel: "Cancelled.",
  abort: "Abort requested: the job's signal fires in its worker.",
  delete: "Deleted.",
};

/**
 * The dashboard of `app` as a fetch handler (Request → Response), to mount in node:http
 * (see nodeListener), Express, Fastify, Hono or any runtime with the Fetch API. The app must
 * be open while the dashboard serves; the dashboard never opens or closes it.
 */
export function createDashboard(app: App, options: DashboardOptions = {}): Dashboard {
  const o = resolveOptions(options);
  const live = new LiveFeed(app, o.pollInterval);
  const router = new Hono({ strict: false });
  const routes = o.basePath ? router.basePath(o.basePath) : router;

  router.use("*", async (c, next) => {
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(name, value);
  });

  /** The page context; with actions, the CSRF cookie is set when the browser has none yet. */
  const pageContext = (c: Context): PageContext => {
    const ctx: PageContext = { base: o.basePath, actions: null, now: new Date() };
    if (!o.actions) return ctx;
    let nonce = nonceFromCookie(c.req.header("cookie"));
    if (nonce === null) {
      nonce = newNonce();
      c.header("set-cookie", csrfCookie(nonce, o.basePath, new URL(c.req.url).protocol === "https:"));
    }
    ctx.actions = { csrf: csrfToken(o.secret, nonce), needsToken: o.token !== null };
    return ctx;
  };
  const page = (c: Context, body: string, statusCode: 200 | 403 | 404 | 409 = 200) => {
    c.header("cache-control", "no-store");
    return c.html(body, statusCode);
  };

  routes.get("/assets/style.css", (c) =>
    c.body(STYLE_CSS, 200, { "content-type": "text/css; charset=utf-8", "cache-control": "no-cache" }),
  );
  routes.get("/assets/live.js", (c) =>
    c.body(LIVE_JS, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" }),
  );

  routes.get("/", async (c) => {
    const [queues, gauges, workers] = await Promise.all([
      app.jobManager.listQueues(),
      app.jobManager.queueGauges(),
      app.jobManager.listWorkers(),
    ]);
    return page(c, overviewPage(pageContext(c), { queues, gauges, workers }));
  });

  routes.get("/jobs", async (c) => {
    const text = (name: string) => c.req.query(name)?.trim() || null;
    const rawStatus = text("status");
    const before = Number(text("before"));
    const filter: JobsFilter = {
      status: JOB_STATUSES.includes(rawStatus as JobStatus) ? (rawStatus as JobStatus) : null,
      queue: text("queue"),
      task: text("task"),
      lock: text("lock"),
      queueingLock: text("queueing_lock"),
      before: Number.isSafeInteger(before) && before > 0 ? before : null,
    };
    const [jobs, queues] = await Promise.all([
      app.jobManager.listJobs({
        status: filter.status ?? undefined,
        queue: filter.queue ?? undefined,
        task: filter.task ?? undefined,
        lock: filter.lock ?? undefined,
        queueingLock: filter.queueingLock ?? undefined,
        beforeId: filter.before ?? undefined,
        // One more than a page says whether there is an older page.
        limit: o.pageSize + 1,
      }),
      app.jobManager.listQueues(),
    ]);
    const hasOlder = jobs.length > o.pageSize;
    return page(
      c,
      jobsPage(
        pageContext(c),
        filter,
        jobs.slice(0, o.pageSize),
        hasOlder,
        queues.map((q) => q.name),
      ),
    );
  });

  routes.get("/jobs/:id{[0-9]+}", async (c) => {
    const ctx = pageContext(c);
    const id = Number(c.req.param("id"));
    const job = Number.isSafeInteger(id) ? await app.jobManager.getJob(id) : null;
    if (!job) return page(c, messagePage(ctx, "Job not found", `There is no job ${c.req.param("id")}.`), 404);
    const done = c.req.query("done") as DashboardAction | undefined;
    const notice =
      done && ACTIONS.includes(done) ? html`<p class="notice" id="notice">${DONE[done]}</p>` : null;
    return page(c, jobPage(ctx, job, notice));
  });

  routes.get("/events", (c) => {
    c.header("cache-control", "no-store");
    return streamSSE(c, async (stream) => {
      let wake: () => void = () => {};
      let changed = false;
      let ended = false;
      const unsubscribe = live.subscribe({
        change() {
          changed = true;
          wake();
        },
        end() {
          ended = true;
          wake();
        },
      });
      stream.onAbort(() => {
        ended = true;
        wake();
      });
      try {
        await stream.writeSSE({ event: "ready", data: "", retry: 1000 });
        while (!ended && !stream.aborted) {
          if (changed) {
            changed = false;
            await stream.writeSSE({ event: "change", data: String(Date.now()) });
            continue;
          }
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            wake = resolve;
            timer = setTimeout(resolve, KEEPALIVE_MS);
          });
          clearTimeout(timer);
          wake = () => {};
          // A comment line keeps proxies from closing an idle stream.
          if (!changed && !ended && !stream.aborted) await stream.write(": keepalive\n\n");
        }
      } finally {
        unsubscribe();
      }
    });
  });

  routes.post("/jobs/:id{[0-9]+}/actions", async (c) => {
    const request = c.req.raw;
    const id = Number(c.req.param("id"));
    const wantsJson = (c.req.header("accept") ?? "").includes("application/json");
    const refuse = (statusCode: 403 | 404 | 409 | 400, message: string) => {
      if (wantsJson) return c.json({ error: message }, statusCode);
      c.header("cache-control", "no-store");
      return c.html(
        messagePage({ base: o.basePath, actions: null, now: new Date() }, "Refused", message),
        statusCode,
      );
    };
    if (!o.actions) return refuse(403, "this dashboard is read-only: actions are not enabled");
    const crossSite = crossSiteReason(request);
    if (crossSite)
      return refuse(403, `refused ${crossSite}: actions are only taken from the dashboard's own pages`);
    const form = await readForm(request);
    const csrf = csrfReason(o, request, form.get(CSRF_FIELD) ?? c.req.header("x-proc-csrf") ?? null);
    if (csrf) return refuse(403, `refused: ${csrf}`);
    const action = form.get("action") as DashboardAction | undefined;
    if (!action || !ACTIONS.includes(action))
      return refuse(400, `unknown action: expected one of ${ACTIONS.join(", ")}`);
    const denied = await authorizationReason(o, request, action, form.get("token") ?? null);
    if (denied) return refuse(403, `refused: ${denied}`);
    if (!Number.isSafeInteger(id)) return refuse(404, `there is no job ${c.req.param("id")}`);
    const before = await app.jobManager.getJob(id);
    if (!before) return refuse(404, `there is no job ${id}`);
    const outcome = await act(app, id, action);
    if (outcome === null)
      return refuse(409, `job ${id} is ${before.status}: it cannot be ${pastTense(action)}`);
    live.changed();
    if (wantsJson) return c.json({ id, action, status: outcome });
    const location = action === "delete" ? `${o.basePath}/jobs` : `${o.basePath}/jobs/${id}?done=${action}`;
    return c.redirect(location, 303);
  });

  routes.all("*", (c) => page(c, messagePage(pageContext(c), "Not found", "There is no such page."), 404));

  const handler = ((request: Request) => Promise.resolve(router.fetch(request))) as Dashboard;
  Object.defineProperties(handler, {
    close: { value: () => live.close() },
    basePath: { value: o.basePath, enumerable: true },
  });
  return handler;
}

/** The job's status after the action, or null when the action did not apply to it. */
async function act(app: App, id: number, action: DashboardAction): Promise<JobStatus | "deleted" | null> {
  switch (action) {
    case "retry":
      return (await app.jobManager.retryJob(id))?.status ?? null;
    case "cancel": {
      const status = await app.jobManager.cancelJob(id);
      return status === "cancelled" ? status : null;
    }
    case "abort": {
      // A todo job is cancelled; a doing one is asked to abort (its status stays doing).
      const status = await app.jobManager.cancelJob(id, { abort: true });
      return status === "doing" || status === "cancelled" ? status : null;
    }
    case "delete":
      return (await app.jobManager.deleteJob(id)) === null ? null : "deleted";
  }
}

const pastTense = (action: DashboardAction) =>
  ({ retry: "retried", cancel: "cancelled", abort: "aborted", delete: "deleted" })[action];

/** The form fields of a urlencoded or multipart body (none for JSON or no body). */
async function readForm(request: Request): Promise<Map<string, string>> {
  const type = request.headers.get("content-type") ?? "";
  const fields = new Map<string, string>();
  if (!type.startsWith("application/x-www-form-urlencoded") && !type.startsWith("multipart/form-data"))
    return fields;
  for (const [name, value] of await request.formData())
    if (typeof value === "string") fields.set(name, value);
  return fields;
}
