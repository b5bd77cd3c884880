// The frame every page shares (head, navigation, live switch) and the small formatting helpers
// of the pages. Every value from the database passes through html`` and is escaped.
import { type JobStatus, redact } from "@proc/core";
import { type Html, html } from "./html.js";

export interface PageContext {
  base: string;
  /** Actions enabled: the action forms' hidden fields. */
  actions: { csrf: string; needsToken: boolean } | null;
  now: Date;
}

export type PageName = "overview" | "jobs" | "job" | "workers" | "periodic" | "locks";

/** A worker is alive while its last heartbeat is younger than this (the stalled-job default). */
export const ALIVE_SECONDS = 30;

export const json = (value: unknown): string => redact(JSON.stringify(value, null, 2) ?? "null");

export const muted = (text = "—") => html`<span class="muted">${text}</span>`;

/** A UTC timestamp with its age ("3 min 2 s ago"), or a dash. */
export function when(date: Date | null, now: Date): Html {
  if (date === null) return muted();
  const iso = date.toISOString();
  return html`<time datetime="${iso}" title="${iso}">${iso.replace("T", " ").slice(0, 19)}Z</time> <span class="muted">(${ago(date, now)})</span>`;
}

export function ago(date: Date, now: Date): string {
  const seconds = Math.round((now.getTime() - date.getTime()) / 1000);
  const text = duration(Math.abs(seconds));
  return seconds < 0 ? `in ${text}` : `${text} ago`;
}

export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** 1234567 → "1,234,567": counts read at a glance. */
export const count = (n: number): string => n.toLocaleString("en-US");

export const status = (s: JobStatus) => html`<span class="status ${s}">${s}</span>`;

export function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== null && v !== undefined && v !== "") search.set(k, String(v));
  const text = search.toString();
  return text ? `?${text}` : "";
}

const NAV: Array<[PageName, string, string]> = [
  ["overview", "/", "Overview"],
  ["jobs", "/jobs", "Jobs"],
  ["workers", "/workers", "Workers"],
  ["periodic", "/periodic", "Periodic"],
  ["locks", "/locks", "Locks"],
];

/** The whole document; `scripts` are extra files under /assets, run in order after the page. */
export function layout(
  ctx: PageContext,
  page: PageName,
  title: string,
  body: Html,
  scripts: readonly string[] = [],
  styles: readonly string[] = [],
): string {
  const current = page === "job" ? "jobs" : page;
  return html`<!doctype html>
<html lang="en" data-events="${ctx.base}/events">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · proc</title>
<link rel="icon" href="${ctx.base}/assets/favicon.svg" type="image/svg+xml">
${styles.map((s) => html`<link rel="stylesheet" href="${ctx.base}/assets/${s}">\n`)}<link rel="stylesheet" href="${ctx.base}/assets/style.css">
<script src="${ctx.base}/assets/live.js" defer></script>
${scripts.map((s) => html`<script src="${ctx.base}/assets/${s}" defer></script>\n`)}</head>
<body>
<header>
<a class="brand" href="${ctx.base}/">proc</a>
<nav>${NAV.map(
    ([name, href, label]) =>
      html`<a href="${ctx.base}${href}"${current === name ? html` aria-current="page"` : ""}>${label}</a>`,
  )}</nav>
<div class="live"><span id="live-state" data-state="down">connecting</span><button type="button" id="live-toggle" aria-pressed="false">Pause live updates</button></div>
</header>
<main>
${body}
</main>
</body>
</html>
`.value;
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
