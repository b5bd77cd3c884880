// The overview, the jobs list and a job's detail, as functions of what the database said: no
// I/O here. Every value from the database passes through html`` and is escaped; JSON (args,
// results, errors, history) is also redacted, so a connection string a task put there never
// shows its password.
import {
  JOB_STATUSES,
  type Job,
  type QueueSummary,
  type ThroughputMinute,
  type WorkerInfo,
  redact,
} from "@proc/core";
import { type JobsFilter, filterParams, isFiltered, timeInput } from "./filter.js";
import { type Html, html } from "./html.js";
import {
  ALIVE_SECONDS,
  type PageContext,
  count,
  duration,
  json,
  layout,
  muted,
  query,
  status,
  when,
} from "./layout.js";
import type { BulkAction, DashboardAction } from "./options.js";

export interface OverviewData {
  queues: QueueSummary[];
  throughput: ThroughputMinute[];
  workers: WorkerInfo[];
  stalled: number;
}

const KEPT = ["failed", "cancelled", "aborted"] as const;

export function overviewPage(ctx: PageContext, data: OverviewData): string {
  const total = (pick: (q: QueueSummary) => number) => data.queues.reduce((sum, q) => sum + pick(q), 0);
  const alive = data.workers.filter(
    (w) => ctx.now.getTime() - w.lastHeartbeatAt.getTime() < ALIVE_SECONDS * 1000,
  );
  const waiting = data.queues.filter((q) => q.ready > 0);
  const oldest = waiting.reduce((max, q) => Math.max(max, q.oldestReadySeconds), 0);
  const link = (n: number, params: Record<string, string>) =>
    n === 0 ? muted("0") : html`<a href="${ctx.base}/jobs${query(params)}">${count(n)}</a>`;
  const card = (id: string, n: Html | string, k: string, kind = "") =>
    html`<div class="card ${kind}" id="${id}"><div class="n">${n}</div><div class="k">${k}</div></div>`;
  const failed = total((q) => q.failed);
  const series = {
    t: data.throughput.map((m) => m.minute.getTime() / 1000),
    succeeded: data.throughput.map((m) => m.succeeded),
    failed: data.throughput.map((m) => m.failed),
    waitMean: data.throughput.map((m) => m.waitMeanSeconds),
    waitMax: data.throughput.map((m) => m.waitMaxSeconds),
  };
  const hour = {
    succeeded: series.succeeded.reduce((a, b) => a + b, 0),
    failed: series.failed.reduce((a, b) => a + b, 0),
  };
  const body = html`<h1>Overview</h1>
<div id="overview" data-live>
<div class="cards">
${card(
  "total-todo",
  link(
    total((q) => q.todo),
    { status: "todo" },
  ),
  "waiting",
)}
${card(
  "total-doing",
  link(
    total((q) => q.doing),
    { status: "doing" },
  ),
  "running",
)}
${card("recent-succeeded", count(hour.succeeded), "succeeded · last hour", "good")}
${card("recent-failed", count(hour.failed), "failed · last hour", hour.failed ? "bad" : "")}
${card("total-failed", link(failed, { status: "failed" }), "failed · kept", failed ? "bad" : "")}
${card("oldest-waiting", waiting.length ? duration(oldest) : "—", "oldest waiting")}
${card("workers-alive", html`<a href="${ctx.base}/workers">${alive.length} / ${data.workers.length}</a>`, "workers alive")}
${card("stalled", data.stalled ? link(data.stalled, { status: "doing" }) : muted("0"), "stalled jobs", data.stalled ? "bad" : "")}
</div>
<div class="charts">
<figure class="chart-box"><figcaption>Throughput <span class="muted">jobs per minute, last hour</span></figcaption>
<div class="chart" id="chart-throughput" data-chart="throughput" role="img" aria-label="Jobs that succeeded and failed per minute over the last hour: ${hour.succeeded} succeeded, ${hour.failed} failed"></div></figure>
<figure class="chart-box"><figcaption>Wait time <span class="muted">ready → started, seconds, last hour</span></figcaption>
<div class="chart" id="chart-wait" data-chart="wait" role="img" aria-label="Mean and longest wait before start per minute over the last hour"></div></figure>
<div id="chart-data" hidden data-series="${JSON.stringify(series)}"></div>
</div>
<h2>Queues</h2>
${
  data.queues.length === 0
    ? html`<p class="empty">No jobs yet.</p>`
    : html`<table id="queues">
<thead>
<tr class="group"><th></th><th colspan="4">now</th><th colspan="3">kept</th><th colspan="2">last hour</th></tr>
<tr><th>queue</th><th class="num">waiting</th><th class="num">ready</th><th class="num">running</th><th class="num">oldest waiting</th>${KEPT.map((s) => html`<th class="num">${s}</th>`)}<th class="num">succeeded</th><th class="num">failed</th></tr>
</thead>
<tbody>
${data.queues.map(
  (q) =>
    html`<tr data-queue="${q.queue}"><td><a href="${ctx.base}/jobs${query({ queue: q.queue })}">${q.queue}</a>${q.pausedAt ? html` <span class="badge paused" title="paused since ${q.pausedAt.toISOString()}">paused</span>` : ""}</td>
<td class="num" data-status="todo">${link(q.todo, { queue: q.queue, status: "todo" })}</td>
<td class="num" data-ready>${q.ready === 0 ? muted("0") : count(q.ready)}</td>
<td class="num" data-status="doing">${link(q.doing, { queue: q.queue, status: "doing" })}</td>
<td class="num">${q.ready > 0 ? duration(q.oldestReadySeconds) : muted()}</td>
${KEPT.map((s) => html`<td class="num" data-status="${s}">${link(q[s], { queue: q.queue, status: s })}</td>`)}
<td class="num" data-recent="succeeded">${q.recentSucceeded === 0 ? muted("0") : count(q.recentSucceeded)}</td>
<td class="num" data-recent="failed">${q.recentFailed === 0 ? muted("0") : count(q.recentFailed)}</td></tr>`,
)}
</tbody>
</table>`
}
<p class="hint">Waiting and running jobs are counted exactly, as are the failed, cancelled and aborted jobs the table keeps; succeeded jobs are counted over the last hour. Charts count the jobs that finished each minute.</p>
</div>`;
  return layout(ctx, "overview", "Overview", body, ["uplot.js", "charts.js"], ["uplot.css"]);
}

export interface JobsView {
  filter: JobsFilter;
  jobs: Job[];
  /** The cursor of this page (ids below it), or null for the newest. */
  before: number | null;
  /** The cursor of the next (older) page, or null when there is none. */
  older: number | null;
  /** Set when the bounded id range ran out before a page was full: the ids that were read. */
  searched: { from: number; below: number } | null;
  notice: Html | null;
  /** Queue names to suggest in the filter (JobManager.listQueueNames). */
  queues: string[];
}

const BULK: Array<{ value: BulkAction; label: string; scope: "selected" | "filter"; question: string }> = [
  {
    value: "retry:selected",
    label: "Retry selected",
    scope: "selected",
    question: "Retry the selected jobs?",
  },
  {
    value: "cancel:selected",
    label: "Cancel selected",
    scope: "selected",
    question: "Cancel the selected waiting jobs?",
  },
  {
    value: "delete:selected",
    label: "Delete selected",
    scope: "selected",
    question: "Delete the selected finished jobs? This cannot be undone.",
  },
  {
    value: "retry:filter",
    label: "Retry all finished matching",
    scope: "filter",
    question: "Retry EVERY finished job that matches this filter?",
  },
  {
    value: "cancel:filter",
    label: "Cancel all waiting matching",
    scope: "filter",
    question: "Cancel EVERY waiting job that matches this filter?",
  },
  {
    value: "delete:filter",
    label: "Delete all finished matching",
    scope: "filter",
    question: "Delete EVERY finished job that matches this filter? This cannot be undone.",
  },
];

export function jobsPage(ctx: PageContext, view: JobsView): string {
  const { filter, jobs } = view;
  const params = filterParams(filter);
  const input = (name: string, label: string, value: string | null, extra: Html | string = "") =>
    html`<label>${label}<input name="${name}" value="${value ?? ""}" autocomplete="off"${extra}></label>`;
  const actions = ctx.actions;
  const filtered = isFiltered(filter);
  const described = Object.entries(params)
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  const table = html`<table id="jobs-table">
<thead><tr>${actions ? html`<th class="pick"><input type="checkbox" id="pick-all" aria-label="Select every job of this page"></th>` : ""}<th class="num">id</th><th>task</th><th>queue</th><th>status</th><th class="num">attempts</th><th>lock</th><th>queueing lock</th><th class="num">worker</th><th>created</th><th>finished</th></tr></thead>
<tbody>
${jobs.map(
  (j) =>
    html`<tr data-job-id="${j.id}">${actions ? html`<td class="pick"><input type="checkbox" name="ids" value="${j.id}" aria-label="Select job ${j.id}"></td>` : ""}<td class="num"><a href="${ctx.base}/jobs/${j.id}">${j.id}</a></td><td>${j.task}</td><td>${j.queue}</td><td>${status(j.status)}${j.abortRequested ? html` <span class="muted">aborting</span>` : ""}</td><td class="num">${j.attempts}</td><td>${j.lock ?? ""}</td><td>${j.queueingLock ?? ""}</td><td class="num">${j.workerId === null ? "" : html`<a href="${ctx.base}/jobs${query({ worker: j.workerId })}">${j.workerId}</a>`}</td><td class="nowrap">${when(j.createdAt, ctx.now)}</td><td class="nowrap">${when(j.finishedAt, ctx.now)}</td></tr>`,
)}
</tbody>
</table>`;
  const list = html`<div id="jobs" data-live>
${jobs.length === 0 ? html`<p class="empty" id="no-match">No job matches${view.searched ? html` among the ids ${count(view.searched.from)} to ${count(view.searched.below - 1)}` : ""}.</p>` : table}
${view.searched && jobs.length > 0 ? html`<p class="hint" id="searched">These are the matches among the ids ${count(view.searched.from)} to ${count(view.searched.below - 1)}; each page reads a bounded range of ids, so that every filter stays fast on millions of jobs.</p>` : ""}
<div class="pager">
${view.before !== null ? html`<a href="${ctx.base}/jobs${query(params)}" id="newest">« Newest</a>` : ""}
${view.older !== null ? html`<a href="${ctx.base}/jobs${query({ ...params, before: view.older })}" id="older">${view.searched ? "Search older jobs »" : "Older »"}</a>` : ""}
</div>
</div>`;
  const body = html`<h1>Jobs</h1>
${view.notice ?? ""}
<form class="filters" method="get" action="${ctx.base}/jobs" id="filters">
<label>status<select name="status"><option value="">any</option>${JOB_STATUSES.map(
    (s) => html`<option value="${s}"${filter.status === s ? html` selected` : ""}>${s}</option>`,
  )}</select></label>
${input("queue", "queue", filter.queue, html` list="queue-names"`)}<datalist id="queue-names">${view.queues.map((q) => html`<option value="${q}">`)}</datalist>${input("task", "task", filter.task)}${input("lock", "lock", filter.lock)}${input("queueing_lock", "queueing lock", filter.queueingLock)}
${input("worker", "worker id", params.worker ?? null, html` inputmode="numeric" size="6"`)}
<label>created from (UTC)<input type="datetime-local" name="from" value="${timeInput(filter.from)}" step="1"></label>
<label>created before (UTC)<input type="datetime-local" name="to" value="${timeInput(filter.to)}" step="1"></label>
${input("q", "search in args", filter.search, html` class="wide" placeholder="text, or a JSON object such as {&quot;user_id&quot;: 7}"`)}
<button type="submit" class="primary">Filter</button> <a href="${ctx.base}/jobs">Clear</a>
</form>
${
  actions
    ? html`<form method="post" action="${ctx.base}/jobs/bulk" id="bulk">
<input type="hidden" name="csrf" value="${actions.csrf}">
${Object.entries(params).map(([k, v]) => (v ? html`<input type="hidden" name="${k}" value="${v}">` : ""))}
<div class="bulk-bar">
${actions.needsToken ? html`<label>token <input type="password" name="token" autocomplete="current-password" required></label>` : ""}
<span class="muted">selected:</span>
${BULK.filter((b) => b.scope === "selected").map((b) => html`<button type="submit" name="bulk" value="${b.value}" data-needs-selection data-confirm="${b.question}">${b.label}</button>`)}
${
  filtered
    ? html`<span class="sep"></span><span class="muted" title="${described}">whole filter:</span>
${BULK.filter((b) => b.scope === "filter").map((b) => html`<button type="submit" name="bulk" value="${b.value}" class="${b.value.startsWith("retry") ? "primary" : "danger"}" data-confirm="${b.question} (${described})">${b.label}</button>`)}`
    : ""
}
</div>
${list}
</form>`
    : list
}`;
  return layout(ctx, "jobs", "Jobs", body);
}

const ACTION_LABELS: Record<DashboardAction, string> = {
  retry: "Retry",
  cancel: "Cancel",
  abort: "Abort",
  delete: "Delete",
};

/** The actions that make sense for a job as it is now (the database has the last word). */
export function actionsFor(job: Job): DashboardAction[] {
  switch (job.status) {
    case "todo":
      return ["cancel", "delete"];
    case "doing":
      return job.abortRequested ? [] : ["abort"];
    default:
      return ["retry", "delete"];
  }
}

export function jobPage(ctx: PageContext, job: Job, notice: Html | null): string {
  const field = (label: string, value: Html | string | number | null) =>
    html`<dt>${label}</dt><dd>${value === null ? muted() : value}</dd>`;
  const actions = ctx.actions;
  const available = actionsFor(job);
  const body = html`<h1>Job ${job.id} <span class="muted">${job.task}</span></h1>
${notice ?? ""}
${
  actions && available.length
    ? html`<form class="actions" id="actions" method="post" action="${ctx.base}/jobs/${job.id}/actions">
<input type="hidden" name="csrf" value="${actions.csrf}">
${actions.needsToken ? html`<label>token <input type="password" name="token" autocomplete="current-password" required></label>` : ""}
${available.map(
  (a) =>
    html`<button type="submit" name="action" value="${a}" class="${a === "retry" ? "primary" : "danger"}" data-confirm="${ACTION_LABELS[a]} job ${job.id}?">${ACTION_LABELS[a]}</button>`,
)}
</form>`
    : ""
}
<div id="job" data-live>
<div class="columns">
<div>
<h2>Fields</h2>
<dl class="fields">
${field("status", html`${status(job.status)}${job.abortRequested && job.status === "doing" ? html` <span class="muted">abort requested</span>` : ""}`)}
${field("queue", job.queue)}${field("task", job.task)}${field("priority", job.priority)}
${field("attempts", job.attempts)}${field("run", job.run)}${field("stalled", job.stalledCount)}
${field("lock", job.lock === null ? null : html`<a href="${ctx.base}/jobs${query({ lock: job.lock })}">${job.lock}</a>`)}${field("queueing lock", job.queueingLock)}
${field("worker", job.workerId === null ? null : html`<a href="${ctx.base}/jobs${query({ worker: job.workerId })}">${job.workerId}</a>`)}
${field("created", when(job.createdAt, ctx.now))}${field("scheduled", job.scheduledAt ? when(job.scheduledAt, ctx.now) : null)}
${field("started", job.startedAt ? when(job.startedAt, ctx.now) : null)}${field("finished", job.finishedAt ? when(job.finishedAt, ctx.now) : null)}
</dl>
<h2>Args</h2>
<pre id="args">${json(job.args)}</pre>
<h2>Result</h2>
<pre id="result">${json(job.result)}</pre>
${
  job.error
    ? html`<h2>Error</h2><pre id="error">${redact(`${job.error.name}: ${job.error.message}`)}${job.error.stack ? `\n\n${redact(job.error.stack)}` : ""}</pre>`
    : ""
}
${job.headers ? html`<h2>Headers</h2><pre id="headers">${json(job.headers)}</pre>` : ""}
</div>
<div>
<h2>History</h2>
<ol class="timeline" id="timeline">
${job.events.map((e) => {
  const { type, at, ...rest } = e;
  // An error shows as its name and message here: its stack is in the Error section.
  const error = rest["error"] as { name?: unknown; message?: unknown } | null | undefined;
  if (error && typeof error === "object" && "message" in error)
    rest["error"] = `${String(error.name ?? "Error")}: ${String(error.message)}`;
  const detail = Object.keys(rest).length ? redact(JSON.stringify(rest)) : "";
  return html`<li class="${type}"><span class="type">${type}</span> ${when(at, ctx.now)}${detail ? html`<div class="detail">${detail}</div>` : ""}</li>`;
})}
</ol>
</div>
</div>
</div>`;
  return layout(ctx, "job", `Job ${job.id}`, body);
}

/** "Retried 3 jobs.": the notice after a bulk action. */
export function bulkNotice(action: string | undefined, n: number): Html | null {
  const verb = { retry: "Retried", cancel: "Cancelled", delete: "Deleted" }[action ?? ""];
  if (!verb || !Number.isSafeInteger(n)) return null;
  return html`<p class="notice" id="notice">${verb} ${count(n)} ${n === 1 ? "job" : "jobs"}.</p>`;
}
