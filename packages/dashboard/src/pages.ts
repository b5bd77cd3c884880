// The pages, as functions of what the database said: no I/O here. Every value from the
// database passes through html`` and is escaped; JSON (args, results, errors, history) is
// also redacted, so a connection string a task put there never shows its password.
import {
  type Counts,
  JOB_STATUSES,
  type Job,
  type JobStatus,
  type QueueGauges,
  type WorkerInfo,
  redact,
} from "@proc/core";
import { type Html, html } from "./html.js";
import type { DashboardAction } from "./options.js";

export interface PageContext {
  base: string;
  /** Actions enabled: the action forms' hidden fields. */
  actions: { csrf: string; needsToken: boolean } | null;
  now: Date;
}

/** A worker is alive while its last heartbeat is younger than this (the stalled-job default). */
export const ALIVE_SECONDS = 30;

const json = (value: unknown): string => redact(JSON.stringify(value, null, 2) ?? "null");

function when(date: Date | null, now: Date): Html {
  if (date === null) return html`<span class="muted">—</span>`;
  const iso = date.toISOString();
  return html`<time datetime="${iso}" title="${iso}">${iso.replace("T", " ").slice(0, 19)}Z</time> <span class="muted">(${ago(date, now)})</span>`;
}

function ago(date: Date, now: Date): string {
  const seconds = Math.round((now.getTime() - date.getTime()) / 1000);
  const future = seconds < 0;
  const text = duration(Math.abs(seconds));
  return future ? `in ${text}` : `${text} ago`;
}

export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

const status = (s: JobStatus) => html`<span class="status ${s}">${s}</span>`;

function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== null && v !== undefined && v !== "") search.set(k, String(v));
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function layout(
  ctx: PageContext,
  page: "overview" | "jobs" | "job",
  title: string,
  body: Html,
): string {
  const nav = (name: typeof page, href: string, label: string) =>
    html`<a href="${ctx.base}${href}"${page === name || (name === "jobs" && page === "job") ? html` aria-current="page"` : ""}>${label}</a>`;
  return html`<!doctype html>
<html lang="en" data-events="${ctx.base}/events">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · proc</title>
<link rel="stylesheet" href="${ctx.base}/assets/style.css">
<script src="${ctx.base}/assets/live.js" defer></script>
</head>
<body>
<header>
<span class="brand">proc</span>
<nav>${nav("overview", "/", "Overview")}${nav("jobs", "/jobs", "Jobs")}</nav>
<div class="live"><span id="live-state" data-state="down">connecting</span><button type="button" id="live-toggle" aria-pressed="false">Pause live updates</button></div>
</header>
<main>
${body}
</main>
</body>
</html>
`.value;
}

export interface OverviewData {
  queues: Counts[];
  gauges: QueueGauges[];
  workers: WorkerInfo[];
}

export function overviewPage(ctx: PageContext, data: OverviewData): string {
  const gauges = new Map(data.gauges.map((g) => [g.queue, g]));
  const totals = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
  for (const q of data.queues) for (const s of JOB_STATUSES) totals[s] += q[s];
  const alive = data.workers.filter(
    (w) => ctx.now.getTime() - w.lastHeartbeatAt.getTime() < ALIVE_SECONDS * 1000,
  );
  const oldest = data.gauges.reduce((max, g) => Math.max(max, g.oldestReadySeconds), 0);
  const waiting = data.gauges.some((g) => g.ready > 0);
  const count = (queue: string, s: JobStatus, n: number) =>
    n === 0
      ? html`<span class="muted">0</span>`
      : html`<a href="${ctx.base}/jobs${query({ queue, status: s })}">${n}</a>`;
  const card = (n: string | number, k: string, id: string) =>
    html`<div class="card" id="${id}"><div class="n">${n}</div><div class="k">${k}</div></div>`;
  const body = html`<h1>Overview</h1>
<div id="overview" data-live>
<div class="cards">
${JOB_STATUSES.map((s) => card(totals[s], s, `total-${s}`))}
${card(`${alive.length} / ${data.workers.length}`, "workers alive", "workers-alive")}
${card(waiting ? duration(oldest) : "—", "oldest waiting", "oldest-waiting")}
</div>
<h2>Queues</h2>
${
  data.queues.length === 0
    ? html`<p class="empty">No jobs yet.</p>`
    : html`<table id="queues">
<thead><tr><th>queue</th>${JOB_STATUSES.map((s) => html`<th class="num">${s}</th>`)}<th class="num">oldest waiting</th></tr></thead>
<tbody>
${data.queues.map((q) => {
  const g = gauges.get(q.name);
  return html`<tr data-queue="${q.name}"><td><a href="${ctx.base}/jobs${query({ queue: q.name })}">${q.name}</a></td>${JOB_STATUSES.map(
    (s) => html`<td class="num" data-status="${s}">${count(q.name, s, q[s])}</td>`,
  )}<td class="num">${g && g.ready > 0 ? duration(g.oldestReadySeconds) : html`<span class="muted">—</span>`}</td></tr>`;
})}
</tbody>
</table>`
}
<h2>Workers</h2>
${
  data.workers.length === 0
    ? html`<p class="empty">No worker is registered.</p>`
    : html`<table id="workers">
<thead><tr><th>name</th><th>host</th><th class="num">pid</th><th>queues</th><th class="num">running</th><th class="num">concurrency</th><th>last heartbeat</th></tr></thead>
<tbody>
${data.workers.map(
  (w) =>
    html`<tr><td>${w.name}</td><td>${w.host}</td><td class="num">${w.pid}</td><td>${w.queues?.join(", ") ?? html`<span class="muted">all</span>`}</td><td class="num">${w.doing}</td><td class="num">${w.concurrency}</td><td>${when(w.lastHeartbeatAt, ctx.now)}</td></tr>`,
)}
</tbody>
</table>`
}
</div>`;
  return layout(ctx, "overview", "Overview", body);
}

export interface JobsFilter {
  status: JobStatus | null;
  queue: string | null;
  task: string | null;
  lock: string | null;
  queueingLock: string | null;
  before: number | null;
}

export function jobsPage(
  ctx: PageContext,
  filter: JobsFilter,
  jobs: Job[],
  hasOlder: boolean,
  queues: string[],
): string {
  const filterParams = {
    status: filter.status,
    queue: filter.queue,
    task: filter.task,
    lock: filter.lock,
    queueing_lock: filter.queueingLock,
  };
  const input = (name: string, label: string, value: string | null) =>
    html`<label>${label}<input name="${name}" value="${value ?? ""}" autocomplete="off"></label>`;
  const last = jobs.at(-1);
  const body = html`<h1>Jobs</h1>
<form class="filters" method="get" action="${ctx.base}/jobs">
<label>status<select name="status"><option value="">any</option>${JOB_STATUSES.map(
    (s) => html`<option value="${s}"${filter.status === s ? html` selected` : ""}>${s}</option>`,
  )}</select></label>
<label>queue<input name="queue" value="${filter.queue ?? ""}" list="queue-names" autocomplete="off"></label>
<datalist id="queue-names">${queues.map((q) => html`<option value="${q}"></option>`)}</datalist>
${input("task", "task", filter.task)}${input("lock", "lock", filter.lock)}${input("queueing_lock", "queueing lock", filter.queueingLock)}
<button type="submit" class="primary">Filter</button> <a href="${ctx.base}/jobs">Clear</a>
</form>
<div id="jobs" data-live>
${
  jobs.length === 0
    ? html`<p class="empty">No job matches.</p>`
    : html`<table id="jobs-table">
<thead><tr><th class="num">id</th><th>task</th><th>queue</th><th>status</th><th class="num">attempts</th><th>lock</th><th>queueing lock</th><th>created</th><th>finished</th></tr></thead>
<tbody>
${jobs.map(
  (j) =>
    html`<tr data-job-id="${j.id}"><td class="num"><a href="${ctx.base}/jobs/${j.id}">${j.id}</a></td><td>${j.task}</td><td>${j.queue}</td><td>${status(j.status)}</td><td class="num">${j.attempts}</td><td>${j.lock ?? ""}</td><td>${j.queueingLock ?? ""}</td><td>${when(j.createdAt, ctx.now)}</td><td>${when(j.finishedAt, ctx.now)}</td></tr>`,
)}
</tbody>
</table>`
}
<div class="pager">
${filter.before !== null ? html`<a href="${ctx.base}/jobs${query(filterParams)}" id="newest">« Newest</a>` : ""}
${hasOlder && last ? html`<a href="${ctx.base}/jobs${query({ ...filterParams, before: last.id })}" id="older">Older »</a>` : ""}
</div>
</div>`;
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
    html`<dt>${label}</dt><dd>${value === null ? html`<span class="muted">—</span>` : value}</dd>`;
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
${field("status", html`${status(job.status)}${job.abortRequested ? html` <span class="muted">abort requested</span>` : ""}`)}
${field("queue", job.queue)}${field("task", job.task)}${field("priority", job.priority)}
${field("attempts", job.attempts)}${field("run", job.run)}${field("stalled", job.stalledCount)}
${field("lock", job.lock)}${field("queueing lock", job.queueingLock)}${field("worker", job.workerId)}
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
  const detail = Object.keys(rest).length ? redact(JSON.stringify(rest)) : "";
  return html`<li><span class="type">${type}</span> ${when(at, ctx.now)}${detail ? html`<div class="detail">${detail}</div>` : ""}</li>`;
})}
</ol>
</div>
</div>
</div>`;
  return layout(ctx, "job", `Job ${job.id}`, body);
}

/** A page for an error the user can act on (not found, refused, conflict). */
export function messagePage(ctx: PageContext, title: string, message: string): string {
  return layout(
    ctx,
    "job",
    title,
    html`<h1>${title}</h1><p class="notice error" id="message">${message}</p><p><a href="${ctx.base}/jobs">Back to the jobs</a></p>`,
  );
}
