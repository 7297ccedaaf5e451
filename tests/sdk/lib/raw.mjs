// Raw `ws` sockets that record every frame and the close, for the wire-level tests.

import WebSocket from "ws";

import { Recorder, withDeadline } from "./wait.mjs";

export class RawSocket {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.rec = new Recorder(`raw socket ${ws.url.split("?")[0]}`);
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString("utf8") };
        this.rec.push("close", this.closeInfo);
        resolve(this.closeInfo);
      });
    });
    ws.on("error", (err) => this.rec.push("error", err));
    ws.on("message", (data, isBinary) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      const frame = { isBinary, data: buf, text: isBinary ? undefined : buf.toString("utf8") };
      if (!isBinary) {
        try {
          frame.json = JSON.parse(frame.text);
        } catch {
          // not JSON
        }
      }
      this.frames.push(frame);
      this.rec.push("frame", frame);
      if (frame.json !== undefined) this.rec.push("json", frame.json);
    });
  }

  get protocol() {
    return this.ws.protocol;
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** JSON objects received so far (text frames that parsed). */
  jsons() {
    return this.frames.filter((f) => f.json !== undefined).map((f) => f.json);
  }

  messages() {
    return this.jsons().filter((m) => m.type === "message");
  }

  waitFrame(pred = () => true, timeout = 10000) {
    return this.rec.wait("frame", pred, timeout);
  }

  waitJson(pred = () => true, timeout = 10000) {
    return this.rec.wait("json", pred, timeout);
  }

  waitAck(ackId, timeout = 10000) {
    return this.waitJson((m) => m.type === "ack" && m.ackId === ackId, timeout);
  }

  waitClose(timeout = 10000) {
    return withDeadline(this.closed, timeout, "the socket to close");
  }

  send(data, options) {
    return new Promise((resolve, reject) => this.ws.send(data, options ?? {}, (err) => (err ? reject(err) : resolve())));
  }

  sendJson(obj) {
    return this.send(JSON.stringify(obj));
  }

  /** ping -> pong round trip: proves the server processed everything sent before it. */
  async roundTrip(timeout = 10000) {
    const before = this.frames.length;
    await this.sendJson({ type: "ping" });
    return this.rec.wait("json", (m) => m.type === "pong" && this.frames.length > before, timeout);
  }

  close(code = 1000, reason) {
    try {
      this.ws.close(code, reason);
    } catch {
      // ignore
    }
  }

  terminate() {
    try {
      this.ws.terminate();
    } catch {
      // ignore
    }
  }
}

/**
 * Attempts a WebSocket upgrade. Resolves to {status} when the server answers with an HTTP
 * response instead of 101, or {socket: RawSocket} when it upgrades.
 */
export function tryUpgrade(url, { protocols, headers = {}, timeout = 10000, wsOptions = {} } = {}) {
  return withDeadline(
    new Promise((resolve, reject) => {
      const ws = protocols === undefined ? new WebSocket(url, { headers, ...wsOptions }) : new WebSocket(url, protocols, { headers, ...wsOptions });
      const sock = new RawSocket(ws);
      ws.on("unexpected-response", (req, res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        res.on("end", () => {
          resolve({ status: res.statusCode, headers: res.headers, body });
          req.destroy();
        });
        res.on("error", () => resolve({ status: res.statusCode, headers: res.headers, body }));
      });
      ws.on("open", () => resolve({ socket: sock }));
      ws.on("error", (err) => reject(err));
    }),
    timeout,
    `the upgrade of ${url.split("?")[0]}`,
  );
}

export async function openRaw(url, options = {}) {
  const result = await tryUpgrade(url, options);
  if (result.socket) return result.socket;
  throw new Error(`upgrade of ${url.split("?")[0]} refused with HTTP ${result.status}: ${result.body}`);
}
