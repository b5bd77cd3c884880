// The dashboard's whole client: one stylesheet and one small script, served by the handler
// itself (no CDN: it works on an air-gapped network; CSP allows only 'self').

export const STYLE_CSS = `
:root { --fg: #1d2433; --muted: #5b6475; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff; --accent: #2f5bd3;
  --todo: #6b7280; --doing: #2563eb; --succeeded: #15803d; --failed: #b91c1c; --cancelled: #a16207; --aborted: #7e22ce; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #161b26; color: #fff; }
header .brand { font-weight: 700; letter-spacing: .02em; color: #fff; text-decoration: none; font-size: 16px; }
header nav a { color: #c9d2e3; text-decoration: none; margin-right: 16px; }
header nav a[aria-current="page"] { color: #fff; border-bottom: 2px solid #7aa2ff; padding-bottom: 2px; }
header .live { margin-left: auto; display: flex; align-items: center; gap: 10px; font-size: 13px; color: #c9d2e3; }
header .live button { font: inherit; background: #2a3243; color: #fff; border: 1px solid #3d475c; border-radius: 4px; padding: 3px 10px; cursor: pointer; }
#live-state::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: #9aa3b5; margin-right: 6px; }
#live-state[data-state="live"]::before { background: #34d399; }
#live-state[data-state="paused"]::before { background: #fbbf24; }
main { padding: 20px 24px 40px; max-width: 1400px; }
h1 { font-size: 20px; margin: 0 0 16px; }
h2 { font-size: 15px; margin: 24px 0 8px; }
a { color: var(--accent); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-bottom: 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.card .n { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 11.5px; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .03em; background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: 0; }
.muted { color: var(--muted); }
.empty { padding: 16px; color: var(--muted); background: var(--card); border: 1px dashed var(--line); border-radius: 6px; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; background: var(--todo); }
.status.doing { background: var(--doing); } .status.succeeded { background: var(--succeeded); }
.status.failed { background: var(--failed); } .status.cancelled { background: var(--cancelled); }
.status.aborted { background: var(--aborted); }
form.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; margin-bottom: 14px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
input, select { font: inherit; padding: 4px 6px; border: 1px solid #c8cdd8; border-radius: 4px; background: #fff; }
form.filters > a { align-self: center; }
button { font: inherit; padding: 4px 12px; border-radius: 4px; border: 1px solid #c8cdd8; background: #fff; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger { color: var(--failed); border-color: #e5b4b4; }
.pager { display: flex; gap: 16px; margin-top: 12px; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 0; }
dl.fields dt { color: var(--muted); } dl.fields dd { margin: 0; font-variant-numeric: tabular-nums; }
pre { background: #0f1420; color: #e6edf7; padding: 10px 12px; border-radius: 6px; overflow: auto; max-height: 420px; margin: 0; white-space: pre-wrap; word-break: break-word; }
.columns { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 20px; }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 14px; border-left: 2px solid var(--line); }
ol.timeline li { position: relative; padding: 0 0 12px 12px; }
ol.timeline li::before { content: ""; position: absolute; left: -21px; top: 5px; width: 10px; height: 10px; border-radius: 50%; background: var(--accent); border: 2px solid var(--bg); }
ol.timeline .type { font-weight: 600; } ol.timeline .detail { color: var(--muted); font-family: ui-monospace, monospace; font-size: 12px; }
form.actions { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; }
.notice { padding: 8px 12px; border-radius: 6px; margin-bottom: 14px; background: #e8f5ec; border: 1px solid #b7dfc3; }
.notice.error { background: #fbeaea; border-color: #efc2c2; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
.card a { color: inherit; text-decoration: none; } .card a:hover { text-decoration: underline; }
.card.good .n { color: var(--succeeded); } .card.bad .n { color: var(--failed); }
.charts { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 12px; margin: 16px 0 4px; }
figure.chart-box { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px 4px; }
figure.chart-box figcaption { font-weight: 600; margin-bottom: 4px; }
.chart { min-height: 236px; }
.uplot { font-family: inherit; }
table.u-legend { width: auto; border: 0; background: none; font-size: 12px; margin: 2px auto 4px; }
table.u-legend th, table.u-legend td { border: 0; background: none; text-transform: none; letter-spacing: 0; padding: 2px 6px; color: var(--fg); font-weight: 500; }
td.nowrap { white-space: nowrap; }
tr.group th { text-align: center; border-bottom: 0; padding-bottom: 0; font-size: 11px; color: #8a93a5; }
tr.group th[colspan] { border-left: 1px solid var(--line); }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 11.5px; font-weight: 600; border: 1px solid; }
.badge.paused { color: var(--cancelled); border-color: #e8cf8f; background: #fdf6e3; }
.badge.alive { color: var(--succeeded); border-color: #b7dfc3; background: #e8f5ec; }
.badge.stale { color: var(--failed); border-color: #efc2c2; background: #fbeaea; }
.hint { color: var(--muted); font-size: 12.5px; margin: 10px 0 0; }
.bulk-bar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin-bottom: 10px; }
.bulk-bar .sep { width: 1px; align-self: stretch; background: var(--line); margin: 0 4px; }
button:disabled { opacity: .45; cursor: default; }
td.pick, th.pick { width: 28px; text-align: center; }
form.filters input.wide { width: 320px; }
a.chip { display: inline-block; padding: 0 6px; margin: 1px 2px 1px 0; border: 1px solid var(--line); border-radius: 4px; background: #fafbfc; text-decoration: none; font-variant-numeric: tabular-nums; }
td.jobs { max-width: 420px; }
ol.timeline li.failed::before, ol.timeline li.aborted::before { background: var(--failed); }
ol.timeline li.succeeded::before { background: var(--succeeded); }
ol.timeline li.abort_requested::before, ol.timeline li.cancelled::before { background: var(--cancelled); }
@media (max-width: 900px) { .columns, .charts { grid-template-columns: 1fr; } }
`;

/**
 * Live updates: on each "change" event of the server-sent events stream, fetch this page again
 * and swap its [data-live] regions (the markup is the server's, already escaped; scripts in it
 * would not run, and CSP forbids inline ones anyway). When the stream cannot be held, poll.
 * Pausing keeps the page still for reading; resuming catches up at once.
 */
export const LIVE_JS = `"use strict";
(() => {
  const root = document.documentElement;
  const eventsUrl = root.dataset.events;
  const state = document.getElementById("live-state");
  const toggle = document.getElementById("live-toggle");
  const POLL_MS = 2000;
  let paused = sessionStorage.getItem("proc-dashboard-paused") === "1";
  let stale = false, inflight = false, again = false, pollTimer = null, source = null;

  function show(text, kind) { if (state) { state.textContent = text; state.dataset.state = kind; } }

  async function refresh() {
    if (paused) { stale = true; return; }
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      const response = await fetch(location.href, { headers: { "x-proc-live": "1" }, credentials: "same-origin" });
      if (!response.ok) return;
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      // The jobs ticked for a bulk action stay ticked across the swap.
      const ticked = new Set(Array.from(document.querySelectorAll('input[name="ids"]:checked'), (i) => i.value));
      for (const region of document.querySelectorAll("[data-live]")) {
        const fresh = next.getElementById(region.id);
        if (fresh) region.replaceWith(document.importNode(fresh, true));
      }
      for (const box of document.querySelectorAll('input[name="ids"]')) box.checked = ticked.has(box.value);
      syncSelection();
      root.dataset.refreshed = String(Number(root.dataset.refreshed || "0") + 1);
      document.dispatchEvent(new Event("proc:refreshed"));
    } catch (_) {
      // The server is away for a moment: the next change or poll tries again.
    } finally {
      inflight = false;
      if (again) { again = false; refresh(); }
    }
  }

  function startPolling() {
    if (pollTimer === null) pollTimer = setInterval(refresh, POLL_MS);
    if (!paused) show("polling", "live");
  }
  function stopPolling() { if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; } }

  function connect() {
    if (!eventsUrl || typeof EventSource === "undefined") { startPolling(); return; }
    source = new EventSource(eventsUrl);
    let wasDown = false;
    source.addEventListener("ready", () => {
      stopPolling();
      if (!paused) show("live", "live");
      if (wasDown) refresh();
      wasDown = false;
    });
    source.addEventListener("change", refresh);
    source.addEventListener("error", () => {
      wasDown = true;
      // CLOSED: the browser gave up (the server refused the stream); otherwise it reconnects.
      if (source.readyState === EventSource.CLOSED) startPolling();
      else if (!paused) show("reconnecting", "down");
    });
  }

  function render() {
    if (toggle) {
      toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
    }
    if (paused) show("paused", "paused");
    else show(pollTimer === null ? "live" : "polling", "live");
  }

  if (toggle) toggle.addEventListener("click", () => {
    paused = !paused;
    sessionStorage.setItem("proc-dashboard-paused", paused ? "1" : "0");
    render();
    if (!paused && stale) { stale = false; refresh(); }
  });

  // Bulk actions on the selected jobs: enabled once a job is ticked; the header box ticks them all.
  function syncSelection() {
    const any = document.querySelector('input[name="ids"]:checked') !== null;
    for (const button of document.querySelectorAll("[data-needs-selection]")) button.disabled = !any;
  }
  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target && target.id === "pick-all")
      for (const box of document.querySelectorAll('input[name="ids"]')) box.checked = target.checked;
    syncSelection();
  });

  // Actions ask first: the button's data-confirm is the question.
  document.addEventListener("submit", (event) => {
    const question = event.submitter && event.submitter.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  render();
  syncSelection();
  connect();
})();
`;

/**
 * The overview's two charts, drawn with uPlot (bundled, served from /assets/uplot.js) from
 * the data-series attribute the server rendered; drawn again after each live refresh and
 * on resize. Times on the axis are UTC, like every time the dashboard shows.
 */
/** A favicon of our own: the browser asks for one, and CSP allows images from 'self' only. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#161b26"/><path d="M9 23V9h7a5 5 0 0 1 0 10h-7" fill="none" stroke="#7aa2ff" stroke-width="3.2" stroke-linecap="round" stroke-linejoin="round"/></svg>`;

export const CHARTS_JS = `"use strict";
(() => {
  let charts = [];
  let resizeTimer = null;
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
  const hhmm = (ts) => new Date(ts * 1000).toISOString().slice(11, 16);
  const axes = (unit) => [
    { stroke: "#5b6475", grid: { stroke: "#eef0f4", width: 1 }, ticks: { stroke: "#e3e6ec", width: 1 },
      values: (u, splits) => splits.map(hhmm) },
    { stroke: "#5b6475", grid: { stroke: "#eef0f4", width: 1 }, ticks: { stroke: "#e3e6ec", width: 1 }, size: 52,
      values: (u, splits) => splits.map((v) => v + unit) },
  ];
  const number = (digits) => (u, v) => (v === null || v === undefined ? "—" : String(Number(v.toFixed(digits))));

  function draw() {
    for (const chart of charts) chart.destroy();
    charts = [];
    const holder = document.getElementById("chart-data");
    if (!holder || typeof uPlot === "undefined") return;
    const d = JSON.parse(holder.dataset.series);
    const throughput = document.getElementById("chart-throughput");
    if (throughput) charts.push(new uPlot({
      width: throughput.clientWidth, height: 200, tzDate: utc,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] } },
      axes: axes(""),
      series: [
        { label: "minute (UTC)", value: (u, ts) => (ts == null ? "—" : hhmm(ts)) },
        { label: "succeeded", stroke: "#15803d", fill: "rgba(21, 128, 61, 0.10)", width: 2, value: number(0) },
        { label: "failed", stroke: "#b91c1c", fill: "rgba(185, 28, 28, 0.10)", width: 2, value: number(0) },
      ],
    }, [d.t, d.succeeded, d.failed], throughput));
    const wait = document.getElementById("chart-wait");
    if (wait) charts.push(new uPlot({
      width: wait.clientWidth, height: 200, tzDate: utc,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.1)] } },
      axes: axes(" s"),
      series: [
        { label: "minute (UTC)", value: (u, ts) => (ts == null ? "—" : hhmm(ts)) },
        { label: "mean wait", stroke: "#2f5bd3", width: 2, spanGaps: true, value: number(2) },
        { label: "longest wait", stroke: "#a16207", width: 1.5, dash: [5, 4], spanGaps: true, value: number(2) },
      ],
    }, [d.t, d.waitMean, d.waitMax], wait));
    document.documentElement.dataset.charts = String(charts.length);
  }

  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(draw, 150);
  });
  document.addEventListener("proc:refreshed", draw);
  draw();
})();
`;
