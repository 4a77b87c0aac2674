// mailroom email dashboard: polls /dashboard/api/live (the server keeps one push query per
// source and answers "unchanged" when nothing moved), draws SVG line charts, and searches through
// /dashboard/api/search. Everything that came from the data is escaped before it goes in HTML.
"use strict";

const POLL_MS = 1000;
const HINT = {
  missing: (s) => `<b>${s}</b> does not exist yet. Submit the email pipelines ` +
    `(<code>src/mailroom/email/pipelines/*.sql</code>, in the order <code>python -m mailroom.email.pipelines</code> prints) ` +
    `to this server: <code>mailroom server --queries-file …</code> or <code>POST /ksql</code>` +
    (s === "ALERTS" || s === "STUCK_MAIL" ? `; its rows are written by <code>mailroom run …/alerts.py …/stuck_mail.py</code>` : "") +
    `. The page picks it up by itself.`,
  failed: (s, m) => `The push query on <b>${s}</b> failed: ${esc(m)} (retrying).`,
};
// Okabe-Ito: tells series apart for color-blind readers too
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

let version = -1;
let snapshot = null;

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const $ = (id) => document.getElementById(id);
const pad = (n) => String(n).padStart(2, "0");
function hhmm(ms) { const d = new Date(ms); return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`; }
function when(ms) {
  if (typeof ms !== "number") return "–";
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
function dur(ms) {
  if (typeof ms !== "number") return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 90) return `${s.toFixed(1)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
const num = (v) => (typeof v === "number" ? v.toLocaleString("en-US") : "–");
function pct(v) { return typeof v === "number" ? `${(v * 100).toFixed(1)}%` : "–"; }
function rateClass(v) { return typeof v !== "number" ? "" : v >= 0.95 ? "good" : v >= 0.8 ? "warn" : "bad"; }

// -- charts ---------------------------------------------------------------------------------------
function colorsFor(names) {
  const m = {};
  [...names].sort().forEach((n, i) => { m[n] = PALETTE[i % PALETTE.length]; });
  return m;
}

// y axis: 0..max in 1-2-5 steps (whole numbers for counts), or a percent range in 10/20% steps
function yAxis(values, percent) {
  if (percent) {
    const lo = Math.min(0.6, Math.floor(Math.min(...values) * 10) / 10);
    const step = 1 - lo <= 0.5 ? 0.1 : 0.2;
    const min = 1 - Math.ceil((1 - lo) / step - 1e-9) * step;
    return { min, max: 1, step };
  }
  const top = Math.max(...values, 1);
  const raw = top / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw));
  return { min: 0, max: Math.ceil(top / step) * step, step };
}

// series: [{name, color, points: [[x, y], ...]}]; opts: {percent}
function lineChart(svg, series, opts = {}) {
  const W = Math.max(svg.clientWidth || 360, 200), H = svg.clientHeight || 170;
  const m = { l: opts.percent ? 40 : 34, r: 8, t: 8, b: 20 };
  const pts = series.flatMap((s) => s.points);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.dataset.points = String(pts.length);
  if (!pts.length) {
    svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no windows yet</text>`;
    return;
  }
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  if (x0 === x1) { x0 -= 60000; x1 += 60000; }
  const ax = yAxis(pts.map((p) => p[1]), opts.percent);
  const yMin = ax.min, yMax = ax.max;
  const X = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (y) => H - m.b - ((y - yMin) / (yMax - yMin || 1)) * (H - m.t - m.b);
  let out = "";
  for (let v = yMin; v <= yMax + ax.step / 2; v += ax.step) {
    const y = Y(v);
    const label = opts.percent ? `${Math.round(v * 100)}%` : Math.round(v);
    out += `<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}"/>` +
      `<text x="${m.l - 4}" y="${y + 3}" text-anchor="end">${label}</text>`;
  }
  const ticks = Math.max(2, Math.min(6, Math.floor((W - m.l) / 70)));
  for (let i = 0; i < ticks; i++) {
    const x = x0 + ((x1 - x0) * i) / (ticks - 1);
    out += `<text x="${X(x)}" y="${H - 5}" text-anchor="${i === 0 ? "start" : i === ticks - 1 ? "end" : "middle"}">${hhmm(x)}</text>`;
  }
  out += `<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}"/>`;
  for (const s of series) {
    const p = s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    out += `<polyline points="${p}" stroke="${s.color}"><title>${esc(s.name)}</title></polyline>`;
    if (s.points.length <= 40) {
      for (const [x, y] of s.points) {
        const v = opts.percent ? pct(y) : y;
        out += `<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="2.4" fill="${s.color}"><title>${esc(s.name)} ${hhmm(x)} UTC: ${v}</title></circle>`;
      }
    }
  }
  svg.innerHTML = out;
}

// -- health panels ----------------------------------------------------------------------------------
function renderHealth(prefix, rows, key) {
  const bySubject = new Map();
  for (const r of rows) {
    if (!bySubject.has(r[key])) bySubject.set(r[key], []);
    bySubject.get(r[key]).push(r);
  }
  const colors = colorsFor(bySubject.keys());
  const series = (col) => [...bySubject].map(([name, rs]) => ({
    name, color: colors[name],
    points: rs.filter((r) => typeof r[col] === "number").map((r) => [r.WINDOWSTART, r[col]]),
  }));
  lineChart($(`${prefix}-accept`), series("ACCEPT_RATE"), { percent: true });
  lineChart($(`${prefix}-deferred`), series("DEFERRED"));
  lineChart($(`${prefix}-bounced`), series("BOUNCED"));
  $(`${prefix}-windows`).textContent = String(new Set(rows.map((r) => r.WINDOWSTART)).size);

  const table = $(`${prefix}-latest`);
  if (!rows.length) { table.innerHTML = ""; return; }
  let html = `<tr><th>${key === "MTA" ? "node" : "provider"}</th><th>latest window</th><th class="n">attempts</th>` +
    `<th class="n">delivered</th><th class="n">deferred</th><th class="n">bounced</th><th class="n">acceptance</th>` +
    `<th class="n">p95 latency</th></tr>`;
  for (const [name, rs] of [...bySubject].sort((a, b) => String(a[0]).localeCompare(String(b[0])))) {
    const r = rs[rs.length - 1];
    html += `<tr><td><span class="swatch" style="background:${colors[name]}"></span>${esc(name)}</td>` +
      `<td>${hhmm(r.WINDOWSTART)}</td><td class="n">${num(r.ATTEMPTS)}</td><td class="n">${num(r.DELIVERED)}</td>` +
      `<td class="n">${num(r.DEFERRED)}</td><td class="n">${num(r.BOUNCED)}</td>` +
      `<td class="n ${rateClass(r.ACCEPT_RATE)}">${pct(r.ACCEPT_RATE)}</td><td class="n">${dur(r.P95_LATENCY_MS)}</td></tr>`;
  }
  table.innerHTML = html;
}

function renderAlerts(rows) {
  const ul = $("alerts");
  if (!rows.length) { ul.innerHTML = `<li class="empty">No alerts.</li>`; return; }
  ul.innerHTML = rows.map((a) => `<li><span><span class="badge ${esc(a.KIND)}">${esc(a.KIND)}</span></span>` +
    `<span><b>${esc(a.SUBJECT)}</b> ${esc(a.MESSAGE)}</span>` +
    `<span class="when">${when(a.TS)} UTC${typeof a.VALUE === "number" ? ` · value ${esc(+a.VALUE.toFixed(3))}` : ""}` +
    `${typeof a.BASELINE === "number" ? ` · baseline ${esc(+a.BASELINE.toFixed(3))}` : ""}</span></li>`).join("");
}

function renderStuck(rows) {
  const t = $("stuck");
  if (!rows.length) { t.innerHTML = `<tr><td class="empty">No stuck mail.</td></tr>`; return; }
  t.innerHTML = `<tr><th>message</th><th>state</th><th>recipient</th><th>provider</th><th class="n">age</th></tr>` +
    rows.map((s) => `<tr title="last event ${when(s.LAST_TS)} UTC, detected ${when(s.DETECTED_TS)} UTC">` +
      `<td><a class="mid" data-q="${esc(s.MESSAGE_ID)}">${esc(s.MESSAGE_ID)}</a></td>` +
      `<td><span class="badge ${esc(s.STATE)}">${esc(s.STATE)}</span></td><td class="wrap">${esc(s.RECIPIENT)}</td>` +
      `<td>${esc(s.PROVIDER)}</td><td class="n">${dur(s.AGE_MS)}</td></tr>`).join("");
}

function renderCampaigns(rows) {
  const t = $("campaigns");
  if (!rows.length) { t.innerHTML = `<tr><td class="empty">No campaigns yet.</td></tr>`; return; }
  rows = [...rows].sort((a, b) => (b.SENT || 0) - (a.SENT || 0));
  const cols = ["SENT", "DELIVERED", "DEFERRED", "BOUNCED", "OPENED", "CLICKED", "COMPLAINED"];
  t.innerHTML = `<tr><th>campaign</th>${cols.map((c) => `<th class="n">${c.toLowerCase()}</th>`).join("")}` +
    `<th class="n">delivery rate</th><th class="n">open rate</th></tr>` +
    rows.map((r) => {
      const dr = r.SENT ? r.DELIVERED / r.SENT : null, or = r.DELIVERED ? r.OPENED / r.DELIVERED : null;
      return `<tr><td>${esc(r.CAMPAIGN_ID)}</td>${cols.map((c) => `<td class="n">${num(r[c])}</td>`).join("")}` +
        `<td class="n ${rateClass(dr)}">${pct(dr)}</td><td class="n">${pct(or)}</td></tr>`;
    }).join("");
}

function renderSources(sources) {
  $("sources").innerHTML = Object.entries(sources).map(([name, s]) =>
    `<span class="pill ${esc(s.status)}" title="${esc(s.message || s.status)}">${esc(name)}</span>`).join("");
  for (const el of document.querySelectorAll(".hint[data-source]")) {
    const s = sources[el.dataset.source];
    const text = !s ? "" : s.status === "missing" ? HINT.missing(el.dataset.source)
      : s.status === "failed" ? HINT.failed(el.dataset.source, s.message) : "";
    el.hidden = !text;
    el.innerHTML = text;
  }
}

function render(snap) {
  snapshot = snap;
  renderSources(snap.sources);
  renderHealth("p", snap.provider, "PROVIDER");
  renderHealth("n", snap.node, "MTA");
  renderAlerts(snap.alerts);
  renderStuck(snap.stuck);
  renderCampaigns(snap.campaigns);
  const ix = snap.index, ev = snap.sources.EMAIL_EVENTS;
  $("index-stats").textContent = !ev ? "no event index (MAILROOM_DASHBOARD_INDEX=0)"
    : ev.status !== "live" ? "EMAIL_EVENTS is not there yet"
    : `${num(ix.messages)} recent messages indexed (${num(ix.events)} events; older messages: a scan of EMAIL_EVENTS on request)`;
}

async function poll() {
  try {
    const r = await fetch(`api/live?since=${version}`, { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const snap = await r.json();
    if (!snap.unchanged) { version = snap.version; render(snap); }
    $("conn").textContent = `live · ${new Date().toLocaleTimeString()}`;
    $("conn").classList.remove("down");
  } catch (e) {
    $("conn").textContent = `server unreachable, retrying (${e.message})`;
    $("conn").classList.add("down");
  }
  setTimeout(poll, POLL_MS);
}

// -- search ---------------------------------------------------------------------------------------------
function stateCard(st) {
  if (!st) return `<div class="hint">No EMAIL_STATE row for this message (yet): the events below are all there is.</div>`;
  const f = (k, label, v) => `<div><div class="k">${label}</div>${v ?? esc(st[k] ?? "–")}</div>`;
  const flags = [st.OPENED ? "opened" : "", st.CLICKED ? "clicked" : ""].filter(Boolean).join(", ") || "–";
  return `<div class="state-card">` +
    f("STATE", "state", `<span class="badge ${esc(st.STATE)}" id="result-state">${esc(st.STATE)}</span>`) +
    f("RECIPIENT", "recipient") + f("PROVIDER", "provider") + f("CAMPAIGN_ID", "campaign") + f("MTA", "node") +
    f("ATTEMPTS", "attempts") + f("FIRST_TS", "first event", when(st.FIRST_TS)) + f("LAST_TS", "last event", when(st.LAST_TS)) +
    f("LAST_SMTP_CODE", "last SMTP code") + f("BOUNCE_CLASS", "bounce class") + f("OPENED", "engagement", esc(flags)) +
    f("EVENTS", "events") +
    (st.LAST_REPLY ? `<div class="wide"><div class="k">last reply</div><code>${esc(st.LAST_REPLY)}</code></div>` : "") +
    `</div>`;
}

function timeline(events, from) {
  if (from === "none") {
    return `<div class="hint">This message is older than the dashboard's index of recently active messages. ` +
      `<button class="scan" id="scan">Read its timeline from EMAIL_EVENTS</button> (a pull query that reads the whole stream: slow on a big one).</div>`;
  }
  if (!events.length) return `<div class="empty">No events found.</div>`;
  return `<h3 class="sub">Timeline · ${events.length} events${from === "scan" ? " (from a pull query on EMAIL_EVENTS)" : ""}</h3>` +
    `<ol class="timeline" id="timeline">` + events.map((e) => {
      const bits = [e.ATTEMPT ? `attempt ${esc(e.ATTEMPT)}` : "", e.MTA ? esc(e.MTA) : "",
        e.SMTP_CODE ? `<b>${esc(e.SMTP_CODE)}</b> ${esc(e.ENHANCED_CODE || "")}` : "",
        typeof e.LATENCY_MS === "number" ? `after ${dur(e.LATENCY_MS)}` : "",
        e.BOUNCE_CLASS ? `<span class="badge ${esc(e.BOUNCE_CLASS)}">${esc(e.BOUNCE_CLASS)}</span>` : ""].filter(Boolean);
      return `<li class="${esc(e.TYPE)}"><span class="t">${when(e.TS)}</span><span class="badge ${esc(e.TYPE)}">${esc(e.TYPE)}</span> ` +
        `${bits.join(" · ")}${e.REPLY ? `<span class="reply">${esc(e.REPLY)}</span>` : ""}${e.URL ? `<span class="reply">${esc(e.URL)}</span>` : ""}</li>`;
    }).join("") + `</ol>`;
}

function renderResult(res, selected = 0) {
  const box = $("result");
  box.hidden = false;
  let html = `<button class="close" title="close" id="result-close">×</button>` +
    `<div class="panel-head"><h2>${res.kind === "recipient" ? "Messages to" : "Message"} <span id="result-query">${esc(res.query)}</span></h2>` +
    `<span class="sub" id="result-count">${res.messages.length} message${res.messages.length === 1 ? "" : "s"}</span></div>`;
  html += res.hints.map((h) => `<div class="hint">${esc(h)}</div>`).join("");
  if (res.messages.length > 1) {
    html += `<table class="grid msglist"><tr><th>message</th><th>state</th><th>provider</th><th>last event</th><th class="n">events</th></tr>` +
      res.messages.map((m, i) => `<tr class="${i === selected ? "sel" : ""}"><td><a class="mid" data-pick="${i}">${esc(m.message_id)}</a></td>` +
        `<td><span class="badge ${esc(m.state?.STATE)}">${esc(m.state?.STATE ?? "?")}</span></td><td>${esc(m.state?.PROVIDER ?? "")}</td>` +
        `<td>${when(m.state?.LAST_TS)}</td><td class="n">${m.events.length}</td></tr>`).join("") + `</table>`;
  }
  const m = res.messages[selected];
  if (m) {
    html += `<div id="result-message" data-message-id="${esc(m.message_id)}"><div class="sub">message id <code>${esc(m.message_id)}</code></div>` +
      stateCard(m.state) + timeline(m.events, m.events_from) + `</div>`;
  }
  box.innerHTML = html;
  $("result-close").onclick = () => { box.hidden = true; clearTimeout(refreshTimer); };
  if ($("scan")) $("scan").onclick = () => doSearch(res.query, true);
  for (const a of box.querySelectorAll("a[data-pick]")) a.onclick = () => renderResult(res, +a.dataset.pick);
}

// An open message result refreshes itself (a key lookup and the index: cheap) so its state and
// timeline follow new events; recipient results and scans (table or stream scans) do not.
const REFRESH_MS = 3000;
let refreshTimer = null, shown = "";

async function fetchSearch(q, scan) {
  const r = await fetch(`api/search?q=${encodeURIComponent(q)}${scan ? "&scan=true" : ""}`, { cache: "no-store" });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.json();
}

function scheduleRefresh(res) {
  clearTimeout(refreshTimer);
  const live = res.kind === "message" && res.messages.length === 1 && res.messages[0].events_from === "index";
  const cheap = res.kind === "message" && !res.messages.length;  // not there yet: look again
  if (!live && !cheap) return;
  refreshTimer = setTimeout(async () => {
    if ($("result").hidden) return;
    try {
      const next = await fetchSearch(res.query, false);
      const text = JSON.stringify(next);
      if (text !== shown) { shown = text; renderResult(next); }
      scheduleRefresh(next);
    } catch (e) { scheduleRefresh(res); }
  }, REFRESH_MS);
}

async function doSearch(q, scan = false) {
  clearTimeout(refreshTimer);
  $("q").value = q;
  const box = $("result");
  box.hidden = false;
  box.innerHTML = `<div class="empty">${scan ? "Scanning EMAIL_EVENTS for" : "Searching"} ${esc(q)}…</div>`;
  try {
    const res = await fetchSearch(q, scan);
    shown = JSON.stringify(res);
    renderResult(res);
    scheduleRefresh(res);
  } catch (e) {
    box.innerHTML = `<div class="hint">The search failed: ${esc(e.message)}</div>`;
  }
  box.scrollIntoView({ block: "nearest" });
}

$("search").addEventListener("submit", (ev) => { ev.preventDefault(); const q = $("q").value.trim(); if (q) doSearch(q); });
document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[data-q]");
  if (a) doSearch(a.dataset.q);
});
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => snapshot && render(snapshot), 150);
});
poll();
