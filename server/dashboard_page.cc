// The dashboard page served at /dashboard (server/admin.h): one self-contained HTML file -
// no external script, style, font or image, so it works offline and behind any firewall.
// It signs a one-hour access token in the browser from a pasted connection string (the key
// never leaves the page) or takes ?access_token=, then follows /dashboard/events (SSE).
#include "server/admin.h"

namespace hubcast::server {

const char* const kDashboardPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hubcast dashboard</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#687087; --line:#dde1e8;
          --in:#2f6fdf; --out:#1b9e6b; --bad:#c8372d; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
         background:var(--bg); color:var(--ink); }
  header { display:flex; gap:16px; align-items:baseline; padding:12px 20px;
           background:var(--ink); color:#fff; }
  header h1 { font-size:18px; margin:0; }
  header .node { color:#c9cfdb; }
  .badge { padding:1px 8px; border-radius:10px; font-size:12px; background:#555; }
  .badge.ok { background:var(--out); } .badge.bad { background:var(--bad); }
  main { display:grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap:16px;
         padding:16px 20px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:8px;
            padding:12px 14px; min-width:0; }
  section h2 { font-size:14px; margin:0 0 8px; color:var(--muted); text-transform:uppercase;
               letter-spacing:.04em; }
  .totals { display:flex; gap:24px; flex-wrap:wrap; }
  .totals div b { display:block; font-size:26px; font-variant-numeric:tabular-nums; }
  .totals div span { color:var(--muted); font-size:12px; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  th, td { text-align:right; padding:4px 6px; border-bottom:1px solid var(--line); }
  th:first-child, td:first-child { text-align:left; }
  th { color:var(--muted); font-weight:600; font-size:12px; }
  canvas { width:100%; height:220px; display:block; }
  .legend span { margin-right:14px; font-size:12px; }
  .legend i { display:inline-block; width:10px; height:10px; margin-right:4px;
              vertical-align:middle; }
  #trace { list-style:none; margin:0; padding:0; max-height:320px; overflow:auto;
           font:12px/1.5 ui-monospace, Menlo, Consolas, monospace; }
  #trace li { border-bottom:1px solid var(--line); padding:2px 0; white-space:pre-wrap;
              word-break:break-all; }
  #trace .t-connect { color:var(--out); } #trace .t-disconnect { color:var(--bad); }
  #trace .t-join, #trace .t-leave { color:#8a5a00; } #trace .t-message { color:var(--in); }
  .wide { grid-column: 1 / -1; }
  form { display:flex; gap:8px; flex-wrap:wrap; align-items:center; }
  input { font:inherit; padding:4px 6px; border:1px solid var(--line); border-radius:4px; }
  input.cs { flex:1; min-width:320px; }
  button { font:inherit; padding:4px 12px; border-radius:4px; border:1px solid var(--ink);
           background:var(--ink); color:#fff; cursor:pointer; }
  .muted { color:var(--muted); } .error { color:var(--bad); }
  #login { max-width:760px; margin:40px auto; }
</style>
</head>
<body>
<header>
  <h1>Hubcast</h1>
  <span class="node" id="node">not connected</span>
  <span class="badge" id="ready">-</span>
  <span class="node" id="stream-state"></span>
</header>

<section id="login" hidden>
  <h2>Sign in</h2>
  <p>Paste the connection string (<code>Endpoint=...;AccessKey=...;</code>). The key stays in
     this page: it signs a one-hour access token for this dashboard. Or open this page with
     <code>?access_token=</code> a token signed with an access key whose audience is
     <code>/dashboard</code>.</p>
  <form id="login-form">
    <input class="cs" id="cs" type="password" placeholder="Endpoint=...;AccessKey=...;Version=1.0;"
           autocomplete="off">
    <button type="submit">Open</button>
  </form>
  <p class="error" id="login-error"></p>
</section>

<main id="board" hidden>
  <section class="wide">
    <h2>This node</h2>
    <div class="totals">
      <div><b id="total-connections">0</b><span>connections here</span></div>
      <div><b id="total-received">0</b><span>messages received</span></div>
      <div><b id="total-delivered">0</b><span>messages delivered</span></div>
      <div><b id="rate-received">0</b><span>received / s</span></div>
      <div><b id="rate-delivered">0</b><span>delivered / s</span></div>
      <div><b id="total-dropped">0</b><span>deliveries dropped</span></div>
    </div>
  </section>
  <section class="wide">
    <h2>Hubs</h2>
    <table id="hubs">
      <thead><tr><th>hub</th><th>connections</th><th>here</th><th>groups</th>
        <th>received/s</th><th>delivered/s</th><th>received</th><th>delivered</th>
        <th>replay log</th><th>lag</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Messages per second (last 5 minutes)</h2>
    <div class="legend"><span><i style="background:var(--in)"></i>received</span>
      <span><i style="background:var(--out)"></i>delivered</span>
      <span class="muted" id="chart-max"></span></div>
    <canvas id="chart" width="900" height="220"></canvas>
  </section>
  <section>
    <h2>Cluster</h2>
    <table id="nodes">
      <thead><tr><th>node</th><th>region</th><th>heartbeat age</th><th>lag</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <h2 style="margin-top:14px">Event handlers</h2>
    <table id="upstream">
      <thead><tr><th>event</th><th>status</th><th>calls</th></tr></thead>
      <tbody></tbody>
    </table>
    <p class="muted" id="upstream-failure">no failed call</p>
  </section>
  <section class="wide">
    <h2>Live trace</h2>
    <form id="trace-form">
      <label>hub <input id="trace-hub" placeholder="chat" size="16"></label>
      <button type="submit">Trace</button>
      <span class="muted" id="trace-state">pick a hub to see its connects, joins, messages and
        disconnects as they happen (payloads cut to 128 bytes)</span>
    </form>
    <ul id="trace"></ul>
  </section>
</main>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let token = params.get("access_token") || sessionStorage.getItem("hubcast-token") || "";
let source = null;

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
async function signToken(key) {
  if (!window.crypto || !crypto.subtle) {
    throw new Error("this browser offers no Web Crypto here (use https or localhost, or ?access_token=)");
  }
  const enc = new TextEncoder();
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(enc.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const body = b64url(enc.encode(JSON.stringify(
      { aud: location.origin + "/dashboard", iat: now, exp: now + 3600 })));
  const k = await crypto.subtle.importKey("raw", enc.encode(key), { name: "HMAC", hash: "SHA-256" },
                                          false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(head + "." + body)));
  return head + "." + body + "." + b64url(sig);
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const m = /AccessKey=([^;]+)/i.exec($("cs").value);
  if (!m) { $("login-error").textContent = "no AccessKey= in that connection string"; return; }
  try {
    token = await signToken(m[1]);
    sessionStorage.setItem("hubcast-token", token);
    $("cs").value = "";
    start();
  } catch (err) { $("login-error").textContent = String(err.message || err); }
});

$("trace-form").addEventListener("submit", (e) => {
  e.preventDefault();
  traceHub = $("trace-hub").value.trim();
  $("trace").textContent = "";
  connect();
});

const fmt = (n) => Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 });
const bytes = (n) => n >= 1048576 ? (n / 1048576).toFixed(1) + " MiB"
                   : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B";
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}
let traceHub = params.get("hub") || "";

function render(s) {
  $("node").textContent = "node " + s.node.id + (s.node.region ? " · region " + s.node.region : "") +
      (s.node.clustered ? (s.node.natsConnected ? " · NATS connected" : " · NATS disconnected") : " · single node") +
      " · up " + s.node.uptimeSeconds + " s";
  $("ready").textContent = s.node.ready ? "ready" : "not ready: " + (s.node.notReady || "");
  $("ready").className = "badge " + (s.node.ready ? "ok" : "bad");
  let recvRate = 0, delivRate = 0;
  const tb = $("hubs").tBodies[0];
  tb.textContent = "";
  for (const h of s.hubs) {
    const tr = document.createElement("tr");
    tr.dataset.hub = h.name;
    cell(tr, h.name, "name");
    cell(tr, fmt(h.connections), "connections");
    cell(tr, fmt(h.localConnections), "local");
    cell(tr, fmt(h.groups) + (h.groupsCapped ? "+" : ""), "groups");
    cell(tr, fmt(h.receivedPerSecond), "received-rate");
    cell(tr, fmt(h.deliveredPerSecond), "delivered-rate");
    cell(tr, fmt(h.received), "received");
    cell(tr, fmt(h.delivered), "delivered");
    cell(tr, h.replayLogBytes === undefined ? "-" : bytes(h.replayLogBytes), "replay");
    cell(tr, h.lag === undefined ? "-" : fmt(h.lag), "lag");
    tb.appendChild(tr);
    recvRate += h.receivedPerSecond; delivRate += h.deliveredPerSecond;
  }
  $("total-connections").textContent = fmt(s.totals.localConnections);
  $("total-received").textContent = fmt(s.totals.received);
  $("total-delivered").textContent = fmt(s.totals.delivered);
  $("rate-received").textContent = fmt(recvRate);
  $("rate-delivered").textContent = fmt(delivRate);
  const dropped = Object.entries(s.totals.dropped || {});
  $("total-dropped").textContent = fmt(dropped.reduce((a, [, n]) => a + n, 0));
  $("total-dropped").title = dropped.map(([r, n]) => r + ": " + n).join(", ");

  const nb = $("nodes").tBodies[0];
  nb.textContent = "";
  for (const n of s.nodes) {
    const tr = document.createElement("tr");
    cell(tr, n.id); cell(tr, n.region || "-");
    cell(tr, n.self ? "-" : (n.heartbeatAgeMs / 1000).toFixed(1) + " s");
    cell(tr, n.lag === undefined ? "-" : fmt(n.lag), "lag");
    cell(tr, n.self ? "this node" : "");
    nb.appendChild(tr);
  }
  const ub = $("upstream").tBodies[0];
  ub.textContent = "";
  for (const c of s.upstream.calls) {
    const ev = /event="([^"]*)"/.exec(c.labels), st = /status="([^"]*)"/.exec(c.labels);
    const tr = document.createElement("tr");
    cell(tr, ev ? ev[1] : "?");
    cell(tr, st ? st[1] : "?", st && /^2/.test(st[1]) ? "" : "error");
    cell(tr, fmt(c.count));
    ub.appendChild(tr);
  }
  const f = s.upstream.lastFailure;
  $("upstream-failure").textContent = f
      ? "last failure " + new Date(f.time).toLocaleTimeString() + ": " + f.event + " in hub " + f.hub + " - " + f.error
      : "no failed call";
  drawChart(s.history);
}

function drawChart(history) {
  const c = $("chart"), g = c.getContext("2d");
  const w = c.width, h = c.height, left = 44, bottom = 20;
  g.clearRect(0, 0, w, h);
  const now = history.length ? history[history.length - 1].t : Date.now();
  const span = 300000;
  let max = 1;
  for (const p of history) max = Math.max(max, p.received, p.delivered);
  max = Math.ceil(max * 1.1);
  $("chart-max").textContent = "max " + fmt(max) + "/s";
  g.strokeStyle = "#dde1e8"; g.fillStyle = "#687087"; g.font = "11px sans-serif"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = (h - bottom) * i / 4;
    g.beginPath(); g.moveTo(left, y + .5); g.lineTo(w, y + .5); g.stroke();
    g.fillText(fmt(max * (4 - i) / 4), 2, y + 11);
  }
  for (let m = 0; m <= 5; m++) g.fillText(m === 5 ? "now" : "-" + (5 - m) + " min", left + (w - left - 30) * m / 5, h - 4);
  const x = (t) => left + (w - left) * (1 - (now - t) / span);
  const y = (v) => (h - bottom) * (1 - v / max);
  for (const [key, color] of [["received", "#2f6fdf"], ["delivered", "#1b9e6b"]]) {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    history.forEach((p, i) => i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key])));
    g.stroke();
  }
}

function describe(e) {
  const t = new Date(e.time || Date.now()).toISOString().substr(11, 12);
  switch (e.type) {
    case "connect": return t + " connect    " + e.connectionId + (e.userId ? " user=" + e.userId : "") + " " + e.subprotocol;
    case "disconnect": return t + " disconnect " + e.connectionId + (e.reason ? " (" + e.reason + ")" : "");
    case "join": return t + " join       " + e.connectionId + " -> " + e.group;
    case "leave": return t + " leave      " + e.connectionId + " <- " + e.group;
    case "message": {
      const data = e.payload !== undefined ? e.payload : "base64:" + e.payloadBase64;
      return t + " message    " + e.scope + (e.target ? " " + e.target : "") + " from " + e.from +
          " [" + e.dataType + ", " + e.bytes + " B" + (e.cut ? ", cut short" : "") + "] -> " +
          e.recipients + " recipients: " + data + (e.error ? "  (" + e.error + ")" : "");
    }
    case "lost": return "... " + e.events + " events not shown (the page fell behind)";
    default: return JSON.stringify(e);
  }
}

function connect() {
  if (source) source.close();
  const q = new URLSearchParams({ access_token: token });
  if (traceHub) q.set("hub", traceHub);
  $("trace-hub").value = traceHub;
  source = new EventSource("dashboard/events?" + q.toString());
  source.addEventListener("hello", (m) => {
    const hub = JSON.parse(m.data).hub;
    $("stream-state").textContent = "live";
    $("trace-state").textContent = hub ? "tracing hub " + hub : "no hub traced";
  });
  source.addEventListener("status", (m) => render(JSON.parse(m.data)));
  source.addEventListener("trace", (m) => {
    const e = JSON.parse(m.data);
    const li = document.createElement("li");
    li.className = "t-" + e.type;
    li.textContent = describe(e);
    const list = $("trace");
    list.insertBefore(li, list.firstChild);
    while (list.childNodes.length > 500) list.removeChild(list.lastChild);
  });
  source.onerror = () => {
    $("stream-state").textContent = source.readyState === EventSource.CLOSED
        ? "disconnected (is the token valid?)" : "reconnecting...";
    if (source.readyState === EventSource.CLOSED && !params.get("access_token")) {
      sessionStorage.removeItem("hubcast-token");
      $("board").hidden = true; $("login").hidden = false;
      $("login-error").textContent = "the service refused the token; sign in again";
    }
  };
}

function start() {
  $("login").hidden = true;
  $("board").hidden = false;
  connect();
}
if (location.pathname.endsWith("/")) history.replaceState(null, "", location.pathname.replace(/\/+$/, "") + location.search);
if (token) start(); else $("login").hidden = false;
</script>
</body>
</html>
)HTML";

}  // namespace hubcast::server
