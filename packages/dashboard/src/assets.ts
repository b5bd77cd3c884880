// The dashboard's whole client: one stylesheet and one small script, served by the handler
// itself (no CDN: it works on an air-gapped network; CSP allows only 'self').

export const STYLE_CSS = `
:root { --fg: #1d2433; --muted: #5b6475; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff; --accent: #2f5bd3;
  --todo: #6b7280; --doing: #2563eb; --succeeded: #15803d; --failed: #b91c1c; --cancelled: #a16207; --aborted: #7e22ce; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #161b26; color: #fff; }
header .brand { font-weight: 700; letter-spacing: .02em; }
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
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; min-width: 130px; }
.card .n { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
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
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
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
      for (const region of document.querySelectorAll("[data-live]")) {
        const fresh = next.getElementById(region.id);
        if (fresh) region.replaceWith(document.importNode(fresh, true));
      }
      root.dataset.refreshed = String(Number(root.dataset.refreshed || "0") + 1);
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

  // Actions ask first: the button's data-confirm is the question.
  document.addEventListener("submit", (event) => {
    const question = event.submitter && event.submitter.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  render();
  connect();
})();
`;
