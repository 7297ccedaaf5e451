// Soak driver: one real `hubcast serve` (HUBCAST_BINARY) under mixed traffic for --minutes,
// driven through Microsoft's official SDKs (tests/sdk/node_modules) and raw `ws` sockets:
//   - fan-out: REST sendToGroup (@azure/web-pubsub) at --rate messages/s, spread over --groups
//     groups whose members are reliable clients (@azure/web-pubsub-client, default protocol
//     json.reliable.webpubsub.azure.v1) behind --proxies TCP proxies;
//   - drops: every --drop-every seconds one proxy cuts all its sockets at once (a network
//     failure); its clients recover their sessions through the SDK's own reconnect logic;
//   - churn: --churn raw JSON WebSocket connections a second, each in a churn group for 0.2 to
//     2 s, closed cleanly or dropped abruptly;
//   - REST traffic: --rest-rate management calls a second (group and user membership, existence
//     checks, connection closes, sendToAll, sends to the churn groups).
// Every --interval seconds it prints the server's RSS, open fds and threads (/proc/<pid>) and
// the message counts: sent (accepted with 202), delivered, late (accepted over 30 s ago and not
// yet at some member: a loss in the making), duplicated. At the end it stops the traffic, waits
// for stragglers, closes every client and prints a verdict: PASS when nothing was lost or
// duplicated, no reliable session had to start over, every REST call and churn handshake
// succeeded, the server stayed up and exited cleanly on SIGTERM, and its fds came back to the
// baseline once the clients were gone. RSS is reported (start, max, end), not judged: the log's
// caches grow with the data kept.
//
// Exit status 0 on PASS, 1 on FAIL, 2 on a usage error. Only 127.0.0.1 is used.

import { createRequire } from "node:module";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";

import { WebPubSubClient } from "../sdk/lib/sdk.mjs";
import { startProxy } from "../sdk/lib/proxy.mjs";
import { startServer, JSON_PROTOCOL } from "../sdk/lib/server.mjs";

const require = createRequire(new URL("../sdk/package.json", import.meta.url));
const WebSocket = require("ws");

// ------------------------------------------------------------------------------------------------
// Options

const defaults = {
  minutes: 1,
  groups: 8,
  members: 5, // reliable clients per group
  proxies: 4,
  rate: 40, // REST group sends per second (deliveries: rate * members)
  churn: 10, // churn connections opened per second
  "rest-rate": 5, // other REST calls per second
  "drop-every": 15, // seconds between proxy cuts
  interval: 10, // seconds between reports
  "event-loops": 2,
};

function parseArgs(argv) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, "");
    const value = Number(argv[i + 1]);
    if (!(name in defaults) || !Number.isFinite(value) || value < 0) {
      console.error(`usage: node soak.mjs ${Object.keys(defaults).map((k) => `[--${k} N]`).join(" ")}`);
      process.exit(2);
    }
    opts[name] = value;
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const HUB = "soak";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Date.now();

// ------------------------------------------------------------------------------------------------
// Process figures

// RSS, threads and open fds of the server; `sockets` counts the fds that are sockets (the
// rest are the store's files, whose number changes as the log rolls its files) and `files`
// lists what the others point at.
function procFigures(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name) => Number((new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status) ?? [])[1]);
    const targets = readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return "gone";
      }
    });
    const files = targets.filter((t) => !t.startsWith("socket:"));
    return {
      rssMiB: field("VmRSS") / 1024,
      threads: field("Threads"),
      fds: targets.length,
      sockets: targets.length - files.length,
      files,
    };
  } catch {
    return { rssMiB: NaN, threads: NaN, fds: NaN, sockets: NaN, files: [] };
  }
}

// ------------------------------------------------------------------------------------------------
// State

const counts = {
  sent: 0, // group sends accepted (202)
  sendErrors: 0,
  delivered: 0, // group messages received by reliable members (duplicates included)
  duplicated: 0,
  restCalls: 0,
  restErrors: 0,
  churnOpened: 0,
  churnFailed: 0,
  cuts: 0,
  socketsCut: 0,
  reconnects: 0, // reliable sessions that had to start over (a new connection id)
  stopped: 0,
};
const errors = []; // the first few failures, for the report
function noteError(what) {
  if (errors.length < 20) errors.push(`${new Date().toISOString()} ${what}`);
}

// groups[g] = { name, accepted: [{seq, at}] }
const groups = Array.from({ length: opts.groups }, (_, g) => ({ name: `soak-g${g}`, accepted: [] }));
const members = []; // {client, group, firstConnectedAt, connectionIds:Set, received: Map<seq,count>}
let seq = 0;

// ------------------------------------------------------------------------------------------------
// Start

let running = true; // false once the traffic stops

const server = await startServer({ args: ["--event-loops", String(opts["event-loops"])] });
const service = server.serviceClient(HUB);
const baseline = procFigures(server.pid);
const proxies = [];
for (let p = 0; p < opts.proxies; p++) proxies.push(await startProxy(server.port));
console.log(
  `soak: hubcast pid ${server.pid} port ${server.port}; ${opts.minutes} min, ${opts.groups} groups x ` +
    `${opts.members} reliable members behind ${opts.proxies} proxies, ${opts.rate} sends/s, ` +
    `${opts.churn} churn conns/s, ${opts["rest-rate"]} REST calls/s, a cut every ${opts["drop-every"]} s`,
);

async function startMember(index) {
  const group = index % opts.groups;
  const proxy = proxies[index % proxies.length];
  const member = { group, firstConnectedAt: 0, connectionIds: new Set(), received: new Map() };
  const client = new WebPubSubClient(
    {
      getClientAccessUrl: async () => {
        const { url } = await service.getClientAccessToken({ userId: `member-${index}`, groups: [groups[group].name] });
        return url.replace(`:${server.port}/`, `:${proxy.port}/`);
      },
    },
    { messageRetryOptions: { maxRetries: 0 } },
  );
  member.client = client;
  client.on("connected", (e) => {
    if (!member.firstConnectedAt) member.firstConnectedAt = now();
    if (member.connectionIds.size > 0 && !member.connectionIds.has(e.connectionId)) {
      counts.reconnects += 1;
      noteError(`member-${index} started over as ${e.connectionId}`);
    }
    member.connectionIds.add(e.connectionId);
  });
  client.on("stopped", () => {
    if (!running) return; // the end of the run stops every client
    counts.stopped += 1;
    noteError(`member-${index} stopped`);
  });
  client.on("group-message", (e) => {
    const text = typeof e.message.data === "string" ? e.message.data : "";
    const m = /^s(\d+)$/.exec(text);
    if (!m) return;
    const n = Number(m[1]);
    const seen = member.received.get(n) ?? 0;
    member.received.set(n, seen + 1);
    counts.delivered += 1;
    if (seen > 0) counts.duplicated += 1;
  });
  await client.start();
  const deadline = now() + 20000;
  while (!member.firstConnectedAt && now() < deadline) await sleep(20);
  if (!member.firstConnectedAt) throw new Error(`member-${index} did not connect`);
  members.push(member);
}

for (let i = 0; i < opts.groups * opts.members; i++) await startMember(i);

// ------------------------------------------------------------------------------------------------
// Traffic

let inFlight = 0;
const kMaxInFlight = 64;

async function sendOne() {
  const g = seq % opts.groups;
  const n = seq++;
  const at = now();
  inFlight += 1;
  try {
    await service.group(groups[g].name).sendToAll(`s${n}`, { contentType: "text/plain" });
    counts.sent += 1;
    groups[g].accepted.push({ seq: n, at });
  } catch (err) {
    counts.sendErrors += 1;
    noteError(`send s${n}: ${err.statusCode ?? ""} ${err.message}`);
  } finally {
    inFlight -= 1;
  }
}

// Runs `fn` `perSecond` times a second in 100 ms ticks (fractions carried over) while running.
function ticker(perSecond, fn) {
  let credit = 0;
  const timer = setInterval(() => {
    if (!running) return clearInterval(timer);
    credit += perSecond / 10;
    while (credit >= 1) {
      credit -= 1;
      fn();
    }
  }, 100);
  return timer;
}

ticker(opts.rate, () => {
  if (inFlight < kMaxInFlight) sendOne();
});

let churnIndex = 0;
const churnOpen = new Set();
const churnIds = [];
ticker(opts.churn, async () => {
  const i = churnIndex++;
  const group = `soak-churn${i % 4}`;
  let url;
  try {
    ({ url } = await service.getClientAccessToken({ userId: `churn-${i % 50}`, groups: [group] }));
  } catch (err) {
    counts.churnFailed += 1;
    noteError(`churn token: ${err.message}`);
    return;
  }
  const ws = new WebSocket(url, JSON_PROTOCOL);
  churnOpen.add(ws);
  let connected = false;
  const timer = setTimeout(() => {
    if (!connected) {
      counts.churnFailed += 1;
      noteError(`churn-${i}: no connected message within 10 s`);
      ws.terminate();
    }
  }, 10000);
  ws.on("message", (data) => {
    if (connected) return;
    let m;
    try {
      m = JSON.parse(data.toString("utf8"));
    } catch {
      return;
    }
    if (m.type !== "system" || m.event !== "connected") return;
    connected = true;
    clearTimeout(timer);
    counts.churnOpened += 1;
    churnIds.push(m.connectionId);
    if (churnIds.length > 100) churnIds.shift();
    setTimeout(() => (i % 3 === 0 ? ws.terminate() : ws.close(1000)), 200 + Math.random() * 1800);
  });
  ws.on("error", (err) => {
    if (!connected) {
      clearTimeout(timer);
      counts.churnFailed += 1;
      noteError(`churn-${i}: ${err.message}`);
    }
  });
  ws.on("close", () => churnOpen.delete(ws));
});

// The REST calls cycle through these; each must succeed (an SDK call that throws is an error).
let restIndex = 0;
const restCalls = [
  () => service.group("soak-churn1").sendToAll({ hello: "churn" }),
  () => service.groupExists(groups[restIndex % opts.groups].name),
  () => service.userExists(`member-${restIndex % members.length}`),
  () => service.group("soak-extra").addUser(`churn-${restIndex % 50}`),
  () => service.group("soak-extra").removeUser(`churn-${restIndex % 50}`),
  () => service.connectionExists(churnIds[restIndex % Math.max(churnIds.length, 1)] ?? "none"),
  () => (churnIds.length ? service.closeConnection(churnIds[0], { reason: "soak" }) : service.userExists("x")),
  () => service.sendToUser(`churn-${restIndex % 50}`, "to-user", { contentType: "text/plain" }),
  () => service.sendToAll("all", { contentType: "text/plain", filter: "userId eq 'churn-1'" }),
  () => service.group("soak-churn2").removeUser(`churn-${restIndex % 50}`),
];
ticker(opts["rest-rate"], async () => {
  const call = restCalls[restIndex++ % restCalls.length];
  try {
    await call();
    counts.restCalls += 1;
  } catch (err) {
    counts.restErrors += 1;
    noteError(`REST call ${(restIndex - 1) % restCalls.length}: ${err.statusCode ?? ""} ${err.message}`);
  }
});

let cutIndex = 0;
const cutTimer = setInterval(() => {
  if (!running) return;
  const proxy = proxies[cutIndex++ % proxies.length];
  counts.cuts += 1;
  counts.socketsCut += proxy.cut(`cut ${cutIndex}`);
}, opts["drop-every"] * 1000);

// ------------------------------------------------------------------------------------------------
// Accounting

// Messages a member must get: accepted for its group and sent after it first connected.
function expectedFor(member) {
  return groups[member.group].accepted.filter((a) => a.at >= member.firstConnectedAt);
}

function missing(olderThan) {
  let late = 0;
  for (const member of members) {
    for (const a of expectedFor(member)) {
      if (a.at < olderThan && !member.received.has(a.seq)) late += 1;
    }
  }
  return late;
}

const samples = [];
const started = now();
function report(label) {
  const f = procFigures(server.pid);
  samples.push(f);
  const el = ((now() - started) / 1000).toFixed(0).padStart(5);
  console.log(
    `${label.padEnd(6)} t=${el}s rss=${f.rssMiB.toFixed(1)}MiB fds=${f.fds} threads=${f.threads} ` +
      `sent=${counts.sent} delivered=${counts.delivered} late=${missing(now() - 30000)} dup=${counts.duplicated} ` +
      `churn=${counts.churnOpened}(+${churnOpen.size} open, ${counts.churnFailed} failed) ` +
      `rest=${counts.restCalls}(${counts.restErrors} err) sendErr=${counts.sendErrors} ` +
      `cuts=${counts.cuts}(${counts.socketsCut} sockets) restarts=${counts.reconnects}`,
  );
  return f;
}

const first = report("start");
const reportTimer = setInterval(() => report("soak"), opts.interval * 1000);
const endAt = started + opts.minutes * 60000;
while (now() < endAt && server.alive()) await sleep(500);
running = false;
clearInterval(cutTimer);
clearInterval(reportTimer);
const serverDied = !server.alive();

// Drain: wait until every accepted message has arrived (at most 60 s).
const drainDeadline = now() + 60000;
while ((inFlight > 0 || missing(Infinity) > 0) && now() < drainDeadline && server.alive()) await sleep(500);
const end = report("drain");

// Final accounting, then close every client and let the server settle.
let lost = 0;
let expected = 0;
for (const member of members) {
  for (const a of expectedFor(member)) {
    expected += 1;
    if (!member.received.has(a.seq)) lost += 1;
  }
}
for (const member of members) member.client.stop();
for (const ws of churnOpen) ws.terminate();
for (const proxy of proxies) await proxy.close();
// The server notices the closes on its own, and ends the SDK's idle keep-alive REST connections
// after --http-idle-timeout-seconds (60 by default): up to 80 s to come back to the baseline.
let after = procFigures(server.pid);
for (let i = 0; i < 160 && after.sockets > baseline.sockets; i++) {
  await sleep(500);
  after = procFigures(server.pid);
}
console.log(
  `closed t=${((now() - started) / 1000).toFixed(0).padStart(5)}s rss=${after.rssMiB.toFixed(1)}MiB ` +
    `fds=${after.fds} (sockets ${after.sockets}) threads=${after.threads} (baseline before any client: ` +
    `rss=${baseline.rssMiB.toFixed(1)}MiB fds=${baseline.fds} (sockets ${baseline.sockets}) threads=${baseline.threads})`,
);
const newFiles = after.files.filter((f) => !baseline.files.includes(f));
const goneFiles = baseline.files.filter((f) => !after.files.includes(f));
console.log(`files opened since the start: ${newFiles.join(" ") || "none"}; closed: ${goneFiles.join(" ") || "none"}`);
const exit = await server.stop();

const rss = samples.map((s) => s.rssMiB).filter(Number.isFinite);
const fds = samples.map((s) => s.fds).filter(Number.isFinite);
const threads = samples.map((s) => s.threads).filter(Number.isFinite);
console.log(
  `summary: ${opts.minutes} min; rss start ${first.rssMiB.toFixed(1)} MiB, max ${Math.max(...rss).toFixed(1)} MiB, ` +
    `end ${end.rssMiB.toFixed(1)} MiB, after closing ${after.rssMiB.toFixed(1)} MiB; fds baseline ${baseline.fds}, ` +
    `max ${Math.max(...fds)}, after closing ${after.fds}; sockets baseline ${baseline.sockets}, after closing ` +
    `${after.sockets}; threads ${Math.min(...threads)}-${Math.max(...threads)}; ` +
    `group sends ${counts.sent} accepted (${counts.sendErrors} refused), deliveries expected ${expected}, ` +
    `delivered ${counts.delivered}, lost ${lost}, duplicated ${counts.duplicated}; churn ${counts.churnOpened} ` +
    `connections (${counts.churnFailed} failed); REST calls ${counts.restCalls} (${counts.restErrors} failed); ` +
    `${counts.cuts} cuts of ${counts.socketsCut} sockets, sessions started over ${counts.reconnects}, ` +
    `clients stopped ${counts.stopped}; server exit ${JSON.stringify(exit)}`,
);

const failures = [];
if (serverDied) failures.push("the server died");
if (lost > 0) failures.push(`${lost} deliveries lost`);
if (counts.duplicated > 0) failures.push(`${counts.duplicated} deliveries duplicated`);
if (counts.reconnects > 0) failures.push(`${counts.reconnects} reliable sessions started over`);
if (counts.stopped > 0) failures.push(`${counts.stopped} reliable clients gave up`);
if (counts.sendErrors > 0) failures.push(`${counts.sendErrors} group sends refused`);
if (counts.restErrors > 0) failures.push(`${counts.restErrors} REST calls failed`);
if (counts.churnFailed > 0) failures.push(`${counts.churnFailed} churn handshakes failed`);
if (counts.churnOpened === 0 || counts.sent === 0) failures.push("no traffic happened");
if (after.sockets > baseline.sockets) failures.push(`${after.sockets} sockets after closing, baseline ${baseline.sockets}`);
if (after.files.length > baseline.files.length + 8) failures.push(`${after.files.length} files open, baseline ${baseline.files.length}`);
if (!exit || exit.code !== 0) failures.push(`server exit ${JSON.stringify(exit)}`);
for (const e of errors) console.log(`  ${e}`);
if (failures.length) {
  console.log(`verdict: FAIL (${failures.join("; ")})`);
  if (serverDied) console.log(server.output());
  process.exit(1);
}
console.log("verdict: PASS");
process.exit(0);
