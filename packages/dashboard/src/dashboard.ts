import type { App, Job, JobStatus } from "@proc/core";
import { type Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { CHARTS_JS, FAVICON_SVG, LIVE_JS, STYLE_CSS } from "./assets.js";
import { type JobsFilter, isFiltered, parseFilter, searchFilter } from "./filter.js";
import { UPLOT_CSS, UPLOT_JS } from "./generated/uplot.js";
import { html } from "./html.js";
import { type PageContext, messagePage } from "./layout.js";
import { LiveFeed } from "./live.js";
import { locksPage, parseLocksCursor, periodicPage, workersPage } from "./ops-pages.js";
import {
  ACTIONS,
  appSchedules,
  BULK_ACTIONS,
  type BulkAction,
  type DashboardAction,
  type DashboardOptions,
  type ResolvedOptions,
  resolveOptions,
} from "./options.js";
import { OverviewCache } from "./overview.js";
import { bulkNotice, jobPage, jobsPage, overviewPage } from "./pages.js";
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
/**
 * The ids one page of the jobs list reads at most, whatever the filter: a filter no index
 * serves (a task among finished jobs, text in args) then costs a bounded range of the primary
 * key, and the next range is one click away (measured on 1.1M jobs: about 100 ms for a text
 * search over 100,000 ids).
 */
const PAGE_ID_RANGE = 100_000;
/** The id ranges one page reads at most (filters other than text in args). */
const PAGE_RANGES = 4;
/** Locks per page of the locks page. */
const LOCKS_PAGE = 100;
/** Queue names the jobs filter suggests (a datalist): enough for any real deployment's queues. */
const QUEUE_SUGGESTIONS = 500;
/** The ids one statement of a bulk action on a whole filter covers: no statement holds many row locks. */
const BULK_ID_RANGE = 10_000;
const DONE: Record<DashboardAction, string> = {
  retry: "Retried: the job is waiting to run again.",
  cancel: "Cancelled.",
  abort: "Abort requested: the job's signal fires in its worker.",
  delete: "Deleted.",
};
const ASSETS: Record<string, [string, string]> = {
  "style.css": [STYLE_CSS, "text/css"],
  "live.js": [LIVE_JS, "text/javascript"],
  "charts.js": [CHARTS_JS, "text/javascript"],
  "uplot.js": [UPLOT_JS, "text/javascript"],
  "uplot.css": [UPLOT_CSS, "text/css"],
  "favicon.svg": [FAVICON_SVG, "image/svg+xml"],
};

/**
 * The dashboard of `app` as a fetch handler (Request → Response), to mount in node:http
 * (see nodeListener), Express, Fastify, Hono or any runtime with the Fetch API. The app must
 * be open while the dashboard serves; the dashboard never opens or closes it.
 */
export function createDashboard(app: App, options: DashboardOptions = {}): Dashboard {
  const o = resolveOptions(options);
  const jobs = app.jobManager;
  const overview = new OverviewCache(app);
  // Whatever tells the watching pages to refresh also makes the next overview read again.
  const live = new LiveFeed(app, o.pollInterval, () => overview.invalidate());
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

  routes.get("/assets/:file", (c) => {
    const asset = ASSETS[c.req.param("file")];
    if (!asset) return c.notFound();
    return c.body(asset[0], 200, {
      "content-type": `${asset[1]}; charset=utf-8`,
      "cache-control": "no-cache",
    });
  });

  routes.get("/", async (c) => page(c, overviewPage(pageContext(c), await overview.get())));

  routes.get("/jobs", async (c) => {
    const filter = parseFilter((name) => c.req.query(name));
    const cursor = Number(c.req.query("before"));
    const before = Number.isSafeInteger(cursor) && cursor > 0 ? cursor : null;
    const [found, queues] = await Promise.all([
      findJobs(app, filter, before, o.pageSize),
      jobs.listQueueNames(QUEUE_SUGGESTIONS),
    ]);
    const done = c.req.query("done");
    return page(
      c,
      jobsPage(pageContext(c), {
        filter,
        ...found,
        before,
        queues,
        notice: bulkNotice(done, Number(c.req.query("count"))),
      }),
    );
  });

  routes.get("/jobs/:id{[0-9]+}", async (c) => {
    const ctx = pageContext(c);
    const id = Number(c.req.param("id"));
    const job = Number.isSafeInteger(id) ? await jobs.getJob(id) : null;
    if (!job) return page(c, messagePage(ctx, "Job not found", `There is no job ${c.req.param("id")}.`), 404);
    const done = c.req.query("done") as DashboardAction | undefined;
    const notice =
      done && ACTIONS.includes(done) ? html`<p class="notice" id="notice">${DONE[done]}</p>` : null;
    return page(c, jobPage(ctx, job, notice));
  });

  routes.get("/workers", async (c) => {
    const [workers, running] = await Promise.all([jobs.listWorkers(), jobs.listRunningJobs(1000)]);
    return page(c, workersPage(pageContext(c), workers, running));
  });

  routes.get("/periodic", async (c) =>
    page(c, periodicPage(pageContext(c), o.periodic ?? appSchedules(app), await jobs.listPeriodicTicks())),
  );

  routes.get("/locks", async (c) => {
    const after = parseLocksCursor(c.req.query("after"));
    // One more than a page: whether there is a next one, without counting what follows.
    const { total, locks } = await jobs.listLockHolders(LOCKS_PAGE + 1, after);
    return page(
      c,
      locksPage(pageContext(c), {
        total,
        locks: locks.slice(0, LOCKS_PAGE),
        after,
        more: locks.length > LOCKS_PAGE,
      }),
    );
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
    const id = Number(c.req.param("id"));
    const checked = await guard(c, o, (form) => {
      const action = form.get("action") as DashboardAction | null;
      return action && ACTIONS.includes(action) ? action : null;
    });
    if (checked instanceof Response) return checked;
    const { action, refuse, wantsJson } = checked;
    if (!Number.isSafeInteger(id)) return refuse(404, `there is no job ${c.req.param("id")}`);
    const before = await jobs.getJob(id);
    if (!before) return refuse(404, `there is no job ${id}`);
    const outcome = await act(app, id, action);
    if (outcome === null)
      return refuse(409, `job ${id} is ${before.status}: it cannot be ${pastTense(action)}`);
    live.changed();
    if (wantsJson) return c.json({ id, action, status: outcome });
    const location = action === "delete" ? `${o.basePath}/jobs` : `${o.basePath}/jobs/${id}?done=${action}`;
    return c.redirect(location, 303);
  });

  routes.post("/jobs/bulk", async (c) => {
    let bulk: BulkAction | null = null;
    let form: Form | null = null;
    const checked = await guard(c, o, (f) => {
      form = f;
      bulk = f.get("bulk") as BulkAction | null;
      return bulk && BULK_ACTIONS.includes(bulk) ? (bulk.split(":")[0] as DashboardAction) : null;
    });
    if (checked instanceof Response) return checked;
    const { refuse, wantsJson } = checked;
    const [action, scope] = (bulk as unknown as BulkAction).split(":") as [
      "retry" | "cancel" | "delete",
      string,
    ];
    const fields = form as unknown as Form;
    const filter = parseFilter((name) => fields.get(name));
    let changed: number;
    if (scope === "selected") {
      const ids = fields
        .all("ids")
        .map(Number)
        .filter((id) => Number.isSafeInteger(id) && id > 0);
      if (ids.length === 0) return refuse(400, "no job selected: tick the jobs to act on first");
      changed = await jobs.bulkJobs(action, { ids });
    } else {
      if (!isFiltered(filter))
        return refuse(400, "an action on a whole filter needs a filter: narrow the jobs list first");
      changed = await bulkOverFilter(app, action, filter);
    }
    live.changed();
    if (wantsJson) return c.json({ action, scope, count: changed });
    const params = new URLSearchParams();
    for (const name of ["status", "queue", "task", "lock", "queueing_lock", "worker", "from", "to", "q"]) {
      const value = fields.get(name);
      if (value) params.set(name, value);
    }
    params.set("done", action);
    params.set("count", String(changed));
    return c.redirect(`${o.basePath}/jobs?${params}`, 303);
  });

  routes.all("*", (c) => page(c, messagePage(pageContext(c), "Not found", "There is no such page."), 404));

  const handler = ((request: Request) => Promise.resolve(router.fetch(request))) as Dashboard;
  Object.defineProperties(handler, {
    close: { value: () => live.close() },
    basePath: { value: o.basePath, enumerable: true },
  });
  return handler;
}

type Refuse = (statusCode: 400 | 403 | 404 | 409, message: string) => Response;

/**
 * The guards of every mutating request, in order: actions enabled, same-origin, the CSRF
 * token, a known action, then the token and/or the host's authorize hook. A Response when
 * refused; else the action and how to refuse later (a JSON body, or a page).
 */
async function guard(
  c: Context,
  o: ResolvedOptions,
  actionOf: (form: Form) => DashboardAction | null,
): Promise<Response | { action: DashboardAction; refuse: Refuse; wantsJson: boolean }> {
  const request = c.req.raw;
  const wantsJson = (c.req.header("accept") ?? "").includes("application/json");
  const refuse: Refuse = (statusCode, message) => {
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
  const action = actionOf(form);
  if (!action) return refuse(400, `unknown action: expected one of ${ACTIONS.join(", ")}`);
  const denied = await authorizationReason(o, request, action, form.get("token") ?? null);
  if (denied) return refuse(403, `refused: ${denied}`);
  return { action, refuse, wantsJson };
}

/**
 * One page of the jobs list: the filter's jobs below `before`, newest first, reading at most
 * PAGE_ID_RANGE ids per statement and PAGE_RANGES statements (one when searching args, the
 * costliest filter). When they run out before the page is full, `searched` says which ids
 * were read and `older` points past them (to the next id that exists), so that a rare match
 * far back is reached page by page instead of by one unbounded scan.
 */
async function findJobs(app: App, filter: JobsFilter, before: number | null, pageSize: number) {
  const jobs = app.jobManager;
  const [toId, fromId] = await Promise.all([
    filter.to ? jobs.jobIdAt(filter.to) : null,
    filter.from ? jobs.jobIdAt(filter.from) : null,
  ]);
  let below = before ?? toId;
  if (toId !== null && below !== null) below = Math.min(below, toId);
  if (below === null) {
    const top = await jobs.jobIdBelow(null);
    below = top === null ? 1 : top + 1;
  }
  const lowest = fromId ?? 1;
  // Unfiltered, the primary key's order alone bounds the read: one statement, no range.
  const ranges = !isFiltered(filter) ? 1 : filter.search ? 1 : PAGE_RANGES;
  const range = isFiltered(filter) ? PAGE_ID_RANGE : Number.POSITIVE_INFINITY;
  const found: Job[] = [];
  let floor = below;
  for (let i = 0; i < ranges && found.length <= pageSize && floor > lowest; i++) {
    const upper = floor;
    floor = Math.max(lowest, upper - range);
    found.push(
      ...(await jobs.searchJobs({
        ...searchFilter(filter),
        beforeId: upper,
        fromId: floor,
        limit: pageSize + 1 - found.length,
      })),
    );
  }
  if (found.length > pageSize)
    return { jobs: found.slice(0, pageSize), older: found[pageSize - 1]!.id, searched: null };
  // The ranges ran out: is there anything older to search?
  const next = floor > lowest ? await jobs.jobIdBelow(floor) : null;
  return {
    jobs: found,
    older: next === null ? null : next + 1,
    searched: floor > lowest ? { from: floor, below } : null,
  };
}

/** A bulk action on every job of a filter, one bounded id range per statement, newest first. */
async function bulkOverFilter(
  app: App,
  action: "retry" | "cancel" | "delete",
  filter: JobsFilter,
): Promise<number> {
  const jobs = app.jobManager;
  const top = await jobs.jobIdBelow(null);
  if (top === null) return 0;
  const bottom = (await jobs.jobIdAt(new Date(0))) ?? 1;
  let changed = 0;
  for (let below = top + 1; below > bottom; below -= BULK_ID_RANGE) {
    const fromId = Math.max(bottom, below - BULK_ID_RANGE);
    changed += await jobs.bulkJobs(action, { ...searchFilter(filter), beforeId: below, fromId });
  }
  return changed;
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

interface Form {
  get(name: string): string | null;
  all(name: string): string[];
}

/** The form fields of a urlencoded or multipart body (none for JSON or no body). */
async function readForm(request: Request): Promise<Form> {
  const type = request.headers.get("content-type") ?? "";
  const fields: Array<[string, string]> = [];
  if (type.startsWith("application/x-www-form-urlencoded") || type.startsWith("multipart/form-data"))
    for (const [name, value] of await request.formData())
      if (typeof value === "string") fields.push([name, value]);
  return {
    get: (name) => fields.findLast(([n]) => n === name)?.[1] ?? null,
    all: (name) => fields.filter(([n]) => n === name).map(([, v]) => v),
  };
}
