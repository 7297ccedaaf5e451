import { startServer } from "./lib/server.mjs";
import net from "node:net";
const threads = Number(process.argv[2] ?? 4);
const srv = await startServer({ args: ["--http-threads", String(threads)] });
const socks = [];
for (let i = 0; i < threads; i++) {
  const s = net.connect(srv.port, "127.0.0.1");
  await new Promise(r => s.on("connect", r));
  s.write(`HEAD /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`);
  await new Promise(r => s.once("data", r));
  socks.push(s);
}
const t0 = Date.now();
const ac = new AbortController(); setTimeout(() => ac.abort(), 70000);
try { const r = await fetch(`${srv.endpoint}/api/health`, { method: "HEAD", signal: ac.signal }); console.log(`with ${threads} idle keep-alive connections (--http-threads ${threads}): HEAD /api/health answered after`, Date.now() - t0, "ms"); }
catch (e) { console.log("no answer within 70 s"); }
for (const s of socks) s.destroy();
await srv.stop();
