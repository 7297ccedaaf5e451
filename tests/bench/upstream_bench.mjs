// upstream_bench: how fast `hubcast serve` turns raw-client frames into upstream `message` events,
// and whether a slow upstream call stalls the server's socket handling for everyone else.
// A benchmark, not a test (not registered with ctest). Needs `npm ci` in tests/sdk (it borrows
// that folder's packages and helpers). Run from the repository root:
//
//   HUBCAST_BINARY=build/server/hubcast node tests/bench/upstream_bench.mjs --clients 20 --seconds 10 --slow-ms 2000
//
// What it does:
//   - starts `hubcast serve --event-handler 'HUB=http://127.0.0.1:PORT/api/webpubsub/hubs/{hub}/'`
//     (lib/server.mjs) and an express app with @azure/web-pubsub-express's WebPubSubEventHandler
//     on PORT, in a worker thread (its own event loop, so the handler's work does not skew the
//     client-side timings); handleUserEvent echoes the frame (res.success(data, "text")), and
//     sleeps --slow-ms first when the frame is "slow";
//   - phase "idle": a JSON-subprotocol connection sends {"type":"ping"}, times the pong, and sends
//     the next ping 2 ms later, for 2 s (baseline round trip);
//   - phase "load": --clients raw WebSocket clients (no subprotocol) each send a frame, wait for
//     the echoed frame (the upstream's answer), send the next, for --seconds; the pinger keeps
//     going; in the middle of the phase one more raw client sends "slow". Prints upstream
//     calls/second (counted by the handler), frames/s seen by the clients, the ping round
//     trip during the slow call vs the rest of the phase, and at the end of the phase the TCP
//     sockets on the handler's port in TIME_WAIT and ESTABLISHED (/proc/net/tcp{,6}): a client
//     that reuses kept-alive connections leaves no TIME_WAIT behind;
//   - phase "slow alone": one slow call with no other load, pinger running.
// The ping round trip is the event-loop delay seen from outside: a pong needs the connection's
// loop to read the ping and write the answer. All traffic stays on 127.0.0.1; every loop is
// bounded by --seconds.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

const require = createRequire(new URL("../sdk/package.json", import.meta.url));
const PING_GAP_MS = 2;

if (!isMainThread) {
  // ---- the upstream: express + WebPubSubEventHandler -------------------------------------------
  const express = require("express");
  const { WebPubSubEventHandler } = require("@azure/web-pubsub-express");
  const { hub } = workerData;
  let calls = 0;
  let slowCalls = 0;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const handler = new WebPubSubEventHandler(hub, {
    handleConnect: (req, res) => res.success(),
    handleUserEvent: async (req, res) => {
      calls += 1;
      const text = req.dataType === "binary" ? req.data.toString() : String(req.data);
      if (text === "slow") {
        slowCalls += 1;
        parentPort.postMessage({ slowStarted: Date.now() });
        await sleep(workerData.slowMs);
        parentPort.postMessage({ slowEnded: Date.now() });
      }
      res.success(text, "text");
    },
  });
  const app = express();
  app.use(handler.getMiddleware());
  const server = app.listen(0, "127.0.0.1", () => parentPort.postMessage({ port: server.address().port }));
  parentPort.on("message", (m) => {
    if (m === "count") parentPort.postMessage({ calls, slowCalls });
    if (m === "stop") server.close(() => process.exit(0));
  });
} else {
  await main();
}

async function main() {
  const { startServer, uniqueHub } = await import("../sdk/lib/server.mjs");
  const WebSocket = require("ws");
  const opt = parseArgs(process.argv.slice(2), { clients: 20, seconds: 10, "slow-ms": 2000 });
  const clients = Number(opt.clients);
  const seconds = Number(opt.seconds);
  const slowMs = Number(opt["slow-ms"]);
  const hub = uniqueHub("bench");

  const worker = new Worker(new URL(import.meta.url), { workerData: { hub, slowMs } });
  const fromWorker = [];
  const waiters = [];
  worker.on("message", (m) => {
    const w = waiters.find((x) => x.pred(m));
    if (w) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(m);
    } else {
      fromWorker.push(m);
    }
  });
  const workerMsg = (pred) => {
    const found = fromWorker.find(pred);
    if (found) {
      fromWorker.splice(fromWorker.indexOf(found), 1);
      return Promise.resolve(found);
    }
    return new Promise((resolve) => waiters.push({ pred, resolve }));
  };
  const { port } = await workerMsg((m) => m.port);
  const template = `http://127.0.0.1:${port}/api/webpubsub/hubs/{hub}/`;
  const srv = await startServer({ args: ["--event-handler", `${hub}=${template}`] });
  console.log(`hubcast pid ${srv.pid} on ${srv.endpoint}; upstream ${template}; ${clients} clients, ${seconds} s, slow call ${slowMs} ms`);

  const open = async (protocol) => {
    const url = await srv.clientUrl(hub, { userId: `u${Math.random().toString(36).slice(2, 8)}` });
    const ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
      ws.once("unexpected-response", (req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    return ws;
  };

  // The pinger: ping/pong on a JSON connection, the next ping PING_GAP_MS after each pong (so it
  // samples the loop ~400 times a second without loading it); samples are [sentAt, rttMs].
  const pingWs = await open("json.webpubsub.azure.v1");
  const samples = [];
  let pinging = false;
  let pingSent = 0;
  pingWs.on("message", (data) => {
    const m = JSON.parse(data.toString());
    if (m.type !== "pong") return;
    const now = performance.now();
    samples.push([pingSent, now - pingSent]);
    if (pinging) setTimeout(() => pinging && sendPing(), PING_GAP_MS);
  });
  const sendPing = () => {
    pingSent = performance.now();
    pingWs.send('{"type":"ping"}');
  };
  const startPinging = () => {
    pinging = true;
    sendPing();
  };
  const stopPinging = () => (pinging = false);
  const rtts = (from, to) => samples.filter(([t]) => t >= from && t < to).map(([, r]) => r).sort((a, b) => a - b);
  const fmt = (xs) =>
    xs.length
      ? `n=${xs.length} p50=${pct(xs, 50).toFixed(2)} ms p99=${pct(xs, 99).toFixed(2)} ms max=${xs.at(-1).toFixed(2)} ms`
      : "n=0";
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // ---- phase idle
  let t = performance.now();
  startPinging();
  await sleep(2000);
  stopPinging();
  await sleep(100);
  console.log(`idle:        ping round trip ${fmt(rtts(t, performance.now()))}`);

  // ---- phase load
  const sockets = await Promise.all(Array.from({ length: clients }, () => open()));
  const slowWs = await open();
  let received = 0;
  let running = true;
  for (const [i, ws] of sockets.entries()) {
    let n = 0;
    ws.on("message", () => {
      received += 1;
      if (running) ws.send(`c${i}-${++n}`);
    });
  }
  const before = (worker.postMessage("count"), await workerMsg((m) => m.calls !== undefined));
  const cpu0 = { hubcast: procCpuMs(srv.pid), node: process.cpuUsage() };
  const loadStart = performance.now();
  const wallStart = Date.now();
  startPinging();
  for (const [i, ws] of sockets.entries()) ws.send(`c${i}-0`);
  await sleep((seconds * 1000) / 2 - slowMs / 2);
  const slowReply = new Promise((resolve) => slowWs.once("message", resolve));
  const slowSentPerf = performance.now();
  slowWs.send("slow");
  await slowReply;
  const slowEndPerf = performance.now();
  const rest = seconds * 1000 - (performance.now() - loadStart);
  if (rest > 0) await sleep(rest);
  running = false;
  stopPinging();
  const loadMs = performance.now() - loadStart;
  const sockets0 = tcpStates(port);
  const hubcastCpu = procCpuMs(srv.pid) - cpu0.hubcast;
  const nodeCpu = process.cpuUsage(cpu0.node);
  const nodeCpuMs = (nodeCpu.user + nodeCpu.system) / 1000;
  await sleep(300);
  worker.postMessage("count");
  const afterCounts = await workerMsg((m) => m.calls !== undefined);
  const calls = afterCounts.calls - before.calls;
  const during = rtts(slowSentPerf, slowEndPerf);
  const outside = [...rtts(loadStart, slowSentPerf), ...rtts(slowEndPerf, loadStart + loadMs)].sort((a, b) => a - b);
  console.log(
    `load:        ${calls} upstream calls in ${(loadMs / 1000).toFixed(1)} s = ${(calls / (loadMs / 1000)).toFixed(0)} calls/s; ` +
      `${received} echoed frames = ${(received / (loadMs / 1000)).toFixed(0)} frames/s (${clients} clients, ${(received / clients).toFixed(0)} each)`,
  );
  console.log(`load:        CPU: hubcast ${((100 * hubcastCpu) / loadMs).toFixed(0)}%, this node process (clients + upstream worker) ${((100 * nodeCpuMs) / loadMs).toFixed(0)}% of one core`);
  console.log(`load:        sockets on the handler's port ${port} at the end: ${sockets0.timeWait} in TIME_WAIT, ${sockets0.established} established (both ends counted)`);
  console.log(`load:        slow call answered after ${(slowEndPerf - slowSentPerf).toFixed(0)} ms (started ${((slowSentPerf - loadStart) / 1000).toFixed(1)} s in, wall ${new Date(wallStart).toISOString()})`);
  console.log(`load:        ping round trip outside the slow call ${fmt(outside)}`);
  console.log(`load:        ping round trip during the slow call  ${fmt(during)}`);
  for (const ws of sockets) ws.close();

  // ---- phase slow alone
  await sleep(500);
  t = performance.now();
  startPinging();
  const alone = new Promise((resolve) => slowWs.once("message", resolve));
  slowWs.send("slow");
  await alone;
  const aloneEnd = performance.now();
  stopPinging();
  console.log(`slow alone:  answered after ${(aloneEnd - t).toFixed(0)} ms; ping round trip during it ${fmt(rtts(t, aloneEnd))}`);

  slowWs.close();
  pingWs.close();
  await srv.stop();
  worker.postMessage("stop");
  await new Promise((r) => worker.once("exit", r));
}

/** CPU time (user + system) of a process so far, in ms, from /proc (Linux). */
function procCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (100 Hz)
  } catch {
    return NaN;
  }
}

/** TCP sockets whose local or remote port is `port`, by state (Linux /proc/net/tcp{,6}). */
function tcpStates(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const out = { timeWait: 0, established: 0 };
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      if (!f[1].endsWith(`:${hex}`) && !f[2].endsWith(`:${hex}`)) continue;
      if (f[3] === "06") out.timeWait += 1;
      if (f[3] === "01") out.established += 1;
    }
  }
  return out;
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function parseArgs(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.includes("=") ? a.slice(2).split("=", 2) : [a.slice(2), argv[++i]];
    if (!(k in defaults)) throw new Error(`unknown option --${k} (known: ${Object.keys(defaults).join(", ")})`);
    out[k] = v;
  }
  return out;
}
