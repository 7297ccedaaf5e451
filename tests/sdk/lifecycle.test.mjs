// Server lifecycle and transport edge cases: SIGTERM drains (JSON clients get the
// `disconnected` system message, then the process exits 0), and the frame parser never waits
// on a partial frame (frames trickled one byte at a time are processed as they complete).

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { test } from "node:test";

import { JSON_PROTOCOL, RELIABLE_PROTOCOL, startServer, uniqueHub } from "./lib/server.mjs";
import { sleep, waitUntil, withDeadline } from "./lib/wait.mjs";

const T = { timeout: 60000 };

/** A masked client frame (RFC 6455 5.3). */
function maskedFrame(opcode, payload) {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

/** Unmasked server frames parsed from a byte stream. */
function parseFrames(buf) {
  const frames = [];
  let off = 0;
  while (buf.length - off >= 2) {
    let len = buf[off + 1] & 0x7f;
    let hdr = 2;
    if (len === 126) {
      if (buf.length - off < 4) break;
      len = buf.readUInt16BE(off + 2);
      hdr = 4;
    } else if (len === 127) {
      if (buf.length - off < 10) break;
      len = Number(buf.readBigUInt64BE(off + 2));
      hdr = 10;
    }
    if (buf.length - off < hdr + len) break;
    frames.push({ opcode: buf[off] & 0x0f, payload: buf.subarray(off + hdr, off + hdr + len) });
    off += hdr + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/** A hand-made WebSocket client on a plain TCP socket, so the test controls every byte. */
async function rawTcpClient(port, path, protocol) {
  const socket = net.connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  const key = randomBytes(16).toString("base64");
  let buf = Buffer.alloc(0);
  let upgraded = false;
  const client = { socket, frames: [], texts: () => client.frames.filter((f) => f.opcode === 1).map((f) => f.payload.toString()) };
  await new Promise((resolve, reject) => {
    socket.on("error", reject);
    socket.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        if (!/^HTTP\/1\.1 101/.test(head)) return reject(new Error(head.split("\r\n")[0]));
        upgraded = true;
        buf = buf.subarray(end + 4);
        resolve();
      }
      const { frames, rest } = parseFrames(buf);
      client.frames.push(...frames);
      buf = rest;
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
    );
  });
  return client;
}

test("SIGTERM drains: JSON clients get `disconnected` (Service reload), then the process exits 0", T, async () => {
  const srv = await startServer();
  try {
    const hub = uniqueHub();
    const json = await srv.rawClient(hub, { userId: "j" }, JSON_PROTOCOL);
    const reliable = await srv.rawClient(hub, { userId: "r" }, RELIABLE_PROTOCOL);
    const exit = srv.exited();
    process.kill(srv.pid, "SIGTERM");
    for (const sock of [json, reliable]) {
      const msg = await sock.waitJson((m) => m.type === "system" && m.event === "disconnected");
      assert.equal(msg.message, "Service reload");
      const close = await sock.waitClose();
      assert.equal(close.code, 1001, "going away: a reliable client may come back to a restarted node");
    }
    const { code, signal } = await withDeadline(exit, 10000, "the server to exit after SIGTERM");
    assert.equal(signal, null);
    assert.equal(code, 0);
  } finally {
    await srv.stop();
  }
});

test("frames trickled one byte at a time are processed as each completes", T, async () => {
  const srv = await startServer();
  try {
    const hub = uniqueHub();
    const { token } = await srv.serviceClient(hub).getClientAccessToken({ userId: "slowpoke", roles: ["webpubsub.joinLeaveGroup"] });
    const c = await rawTcpClient(srv.port, `/client/hubs/${hub}?access_token=${token}`, JSON_PROTOCOL);
    await waitUntil(() => c.texts().some((t) => t.includes('"connected"')), { what: "connected" });
    const frames = Buffer.concat([
      maskedFrame(1, Buffer.from(JSON.stringify({ type: "joinGroup", group: "drip", ackId: 1 }))),
      maskedFrame(1, Buffer.from(JSON.stringify({ type: "ping" }))),
      maskedFrame(1, Buffer.from(JSON.stringify({ type: "leaveGroup", group: "drip", ackId: 2, pad: "x".repeat(200) }))),
    ]);
    for (let i = 0; i < frames.length; i++) {
      c.socket.write(frames.subarray(i, i + 1));
      if (i % 16 === 0) await sleep(1);
      // Nothing is answered before the frame that asks for it is complete.
      if (i === 10) assert.equal(c.texts().some((t) => t.includes('"ack"')), false);
    }
    await waitUntil(() => c.texts().filter((t) => t.includes('"ack"')).length === 2 && c.texts().some((t) => t.includes("pong")), {
      what: "two acks and a pong",
    });
    const acks = c.texts().filter((t) => t.includes('"ack"')).map((t) => JSON.parse(t));
    assert.deepEqual(acks.map((a) => [a.ackId, a.success]), [[1, true], [2, true]]);
    c.socket.destroy();
    assert.equal((await srv.rest("HEAD", "/api/health", { auth: false })).status, 200);
  } finally {
    await srv.stop();
  }
});

test("without --access-key a key is generated on first start, printed, and kept in the data dir", T, async () => {
  const { spawn } = await import("node:child_process");
  const { mkdtempSync, rmSync, readFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { WebPubSubServiceClient } = await import("@azure/web-pubsub");
  const dir = mkdtempSync(join(tmpdir(), "hubcast-key-"));
  const run = async () => {
    const child = spawn(process.env.HUBCAST_BINARY, ["serve", "--port", "0", "--ports-file", join(dir, "port"), "--data-dir", join(dir, "data"), "--log-level", "warn"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const exited = new Promise((r) => child.once("exit", (code) => r(code)));
    await waitUntil(() => /AccessKey=([^;]+);/.test(out), { timeout: 15000, what: "the printed connection string" });
    return { child, exited, cs: out.trim().split("\n")[0], key: /AccessKey=([^;]+);/.exec(out)[1] };
  };
  let first;
  let second;
  try {
    first = await run();
    assert.ok(first.key.length >= 32, "a key strong enough for every SDK");
    assert.equal(readFileSync(join(dir, "data", "access-key"), "utf8").trim(), first.key);
    const sc = new WebPubSubServiceClient(first.cs, "kept", { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } });
    assert.equal(await sc.groupExists("nobody"), false, "the SDK authenticates with the generated key");
    first.child.kill("SIGTERM");
    assert.equal(await first.exited, 0);
    second = await run();
    assert.equal(second.key, first.key, "the same key after a restart");
  } finally {
    for (const r of [first, second]) if (r && r.child.exitCode === null) r.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
