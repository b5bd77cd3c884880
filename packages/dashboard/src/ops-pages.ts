// The workers, periodic tasks and locks pages, as functions of what the database (and, for
// periodic tasks, the app's own schedules) said: no I/O here.
import type { LockHolder, LocksCursor, PeriodicTick, RunningJob, WorkerInfo } from "@proc/core";
import { html } from "./html.js";
import type { PeriodicSchedule } from "./options.js";
import { ALIVE_SECONDS, type PageContext, ago, count, layout, muted, query, status, when } from "./layout.js";

export function workersPage(ctx: PageContext, workers: WorkerInfo[], running: RunningJob[]): string {
  const byWorker = new Map<number, RunningJob[]>();
  for (const job of running) {
    if (job.workerId === null) continue;
    const list = byWorker.get(job.workerId) ?? [];
    list.push(job);
    byWorker.set(job.workerId, list);
  }
  const SHOWN = 5;
  const alive = (w: WorkerInfo) => ctx.now.getTime() - w.lastHeartbeatAt.getTime() < ALIVE_SECONDS * 1000;
  const body = html`<h1>Workers</h1>
<div id="workers" data-live>
${
  workers.length === 0
    ? html`<p class="empty">No worker is registered. Start one with <code>proc worker</code>.</p>`
    : html`<table id="workers-table">
<thead><tr><th class="num">id</th><th>name</th><th>host</th><th class="num">pid</th><th>queues</th><th class="num">concurrency</th><th class="num">running</th><th>running jobs</th><th>started</th><th>heartbeat</th></tr></thead>
<tbody>
${workers.map((w) => {
  const jobs = byWorker.get(w.id) ?? [];
  const beat = Math.max(0, (ctx.now.getTime() - w.lastHeartbeatAt.getTime()) / 1000);
  return html`<tr data-worker-id="${w.id}"><td class="num">${w.id}</td><td class="nowrap">${w.name}</td><td class="nowrap">${w.host}</td><td class="num">${w.pid}</td><td>${w.queues?.join(", ") ?? muted("all")}</td><td class="num">${w.concurrency}</td>
<td class="num" data-running>${w.doing === 0 ? muted("0") : html`<a href="${ctx.base}/jobs${query({ status: "doing", worker: w.id })}">${w.doing}</a>`}</td>
<td class="jobs">${jobs.slice(0, SHOWN).map((j) => html`<a class="chip" href="${ctx.base}/jobs/${j.id}" title="${j.task} in ${j.queue}, started ${j.startedAt?.toISOString() ?? ""}">${j.id} <span class="muted">${j.task}</span></a> `)}${jobs.length > SHOWN ? html`<a href="${ctx.base}/jobs${query({ status: "doing", worker: w.id })}">+${jobs.length - SHOWN} more</a>` : ""}</td>
<td class="nowrap">${when(w.startedAt, ctx.now)}</td>
<td class="nowrap" data-heartbeat-age="${Math.round(beat)}"><span class="badge ${alive(w) ? "alive" : "stale"}">${alive(w) ? "alive" : "silent"}</span> ${ago(w.lastHeartbeatAt, ctx.now)}</td></tr>`;
})}
</tbody>
</table>`
}
<p class="hint">A worker is alive while its last heartbeat is younger than ${ALIVE_SECONDS} s; the jobs of a silent worker become stalled jobs, retried by <code>retryStalledJobs()</code> (@proc/contrib-stalled) or <code>proc stalled --retry</code>.</p>
</div>`;
  return layout(ctx, "workers", "Workers", body);
}

export function periodicPage(
  ctx: PageContext,
  schedules: readonly PeriodicSchedule[],
  ticks: PeriodicTick[],
): string {
  const key = (task: string, id: string) => `${task}\u0000${id}`;
  const rows = new Map<string, { schedule: PeriodicSchedule | null; tick: PeriodicTick | null }>();
  for (const s of schedules) rows.set(key(s.taskName, s.periodicId), { schedule: s, tick: null });
  for (const t of ticks) {
    const row = rows.get(key(t.task, t.periodicId));
    if (row) row.tick = t;
    else rows.set(key(t.task, t.periodicId), { schedule: null, tick: t });
  }
  const sorted = [...rows.values()].sort((a, b) => {
    const ka = a.schedule
      ? key(a.schedule.taskName, a.schedule.periodicId)
      : key(a.tick!.task, a.tick!.periodicId);
    const kb = b.schedule
      ? key(b.schedule.taskName, b.schedule.periodicId)
      : key(b.tick!.task, b.tick!.periodicId);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  const unknown = sorted.some((r) => r.schedule === null);
  const next = (s: PeriodicSchedule) => {
    try {
      return when(s.nextTick(ctx.now), ctx.now);
    } catch {
      return muted("?");
    }
  };
  const body = html`<h1>Periodic tasks</h1>
<div id="periodic" data-live>
${
  sorted.length === 0
    ? html`<p class="empty">No periodic task: schedule one with <code>app.periodic({ cron }, task)</code> (@proc/scheduler) and pass its handle to the dashboard's <code>periodic</code> option to see its cron here.</p>`
    : html`<table id="periodic-table">
<thead><tr><th>task</th><th>periodic id</th><th>cron</th><th>time zone</th><th>last tick</th><th>next tick</th><th>last job</th></tr></thead>
<tbody>
${sorted.map(({ schedule: s, tick: t }) => {
  const task = s?.taskName ?? t!.task;
  const periodicId = s?.periodicId ?? t!.periodicId;
  return html`<tr data-task="${task}" data-periodic-id="${periodicId}"><td>${task}</td><td>${periodicId || muted("(default)")}</td>
<td>${s ? html`<code>${s.cron}</code>` : muted("not given")}</td><td>${s?.timezone ?? muted()}</td>
<td>${t ? when(new Date(t.tick * 1000), ctx.now) : muted("never")}</td>
<td>${s ? next(s) : muted()}</td>
<td>${t?.jobId ? html`<a href="${ctx.base}/jobs/${t.jobId}">${t.jobId}</a> ${t.jobStatus ? status(t.jobStatus) : muted("deleted")}` : muted()}</td></tr>`;
})}
</tbody>
</table>`
}
${unknown ? html`<p class="hint">Rows without a cron were deferred by a schedule this dashboard was not given: pass the handles <code>app.periodic()</code> returns as <code>createDashboard(app, { periodic: [...] })</code>.</p>` : ""}
</div>`;
  return layout(ctx, "periodic", "Periodic tasks", body);
}

/** The `after` query field of the locks page: the last lock of the previous page. */
export function parseLocksCursor(text: string | undefined): LocksCursor | null {
  const match = /^([hf])\.(\d{1,9})\.(.+)$/s.exec(text ?? "");
  return match ? { held: match[1] === "h", waiting: Number(match[2]), name: match[3]! } : null;
}

const locksCursor = (l: LockHolder): string => `${l.holder ? "h" : "f"}.${l.waiting}.${l.name}`;

export function locksPage(
  ctx: PageContext,
  data: { total: number; locks: LockHolder[]; after: LocksCursor | null; more: boolean },
): string {
  const last = data.locks.at(-1);
  const body = html`<h1>Locks</h1>
<div id="locks" data-live>
${
  data.locks.length === 0
    ? html`<p class="empty">${data.after ? "No more locks: the ones after this point were released." : "No waiting or running job has a lock."}</p>`
    : html`<table id="locks-table">
<thead><tr><th>lock</th><th>held by</th><th>task</th><th class="num">worker</th><th>since</th><th class="num">waiting behind</th></tr></thead>
<tbody>
${data.locks.map(
  (l) =>
    html`<tr data-lock="${l.name}"><td><a href="${ctx.base}/jobs${query({ lock: l.name })}">${l.name}</a></td>
${
  l.holder
    ? html`<td data-holder="${l.holder.id}"><a href="${ctx.base}/jobs/${l.holder.id}">job ${l.holder.id}</a></td><td>${l.holder.task}</td><td class="num">${l.holder.workerId ?? ""}</td><td>${when(l.holder.startedAt, ctx.now)}</td>`
    : html`<td colspan="4">${muted("free: its next job has not started")}</td>`
}
<td class="num" data-waiting>${l.waiting === 0 ? muted("0") : html`<a href="${ctx.base}/jobs${query({ lock: l.name, status: "todo" })}">${count(l.waiting)}</a>`}</td></tr>`,
)}
</tbody>
</table>`
}
${data.total > 0 ? html`<p class="hint" id="locks-count">${count(data.total)} ${data.total === 1 ? "lock" : "locks"} in all, held ones first, then those with the most jobs waiting${data.after || data.more ? html`, ${count(data.locks.length)} on this page` : ""}.</p>` : ""}
<div class="pager">
${data.after ? html`<a href="${ctx.base}/locks" id="locks-first">« First</a>` : ""}
${data.more && last ? html`<a href="${ctx.base}/locks${query({ after: locksCursor(last) })}" id="locks-next">Next »</a>` : ""}
</div>
</div>`;
  return layout(ctx, "locks", "Locks", body);
}
