// A WebSocket client written by hand over net.Socket, for what `ws` will not send: unmasked
// frames, invalid UTF-8, a client that never reads. Frames from the server are parsed here.

import { randomBytes } from "node:crypto";
import net from "node:net";

import { Recorder } from "./wait.mjs";

/** Opens a TCP connection and performs the upgrade; resolves when the 101 arrives. */
export function tcpHandshake(port, path, { protocol, pauseAfter = false } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const key = randomBytes(16).toString("base64");
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      if (pauseAfter) socket.pause();
      const head = buf.subarray(0, end).toString("latin1");
      if (!/^HTTP\/1\.1 101/.test(head)) {
        socket.destroy();
        reject(new Error(`handshake refused: ${head.split("\r\n")[0]}`));
        return;
      }
      resolve({ socket, head, rest: buf.subarray(end + 4) });
    };
    socket.on("data", onData);
    socket.on("error", reject);
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : "") +
        "\r\n",
    );
  });
}

/** Encodes one frame; masked unless {mask:false}. */
export function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true } = {}) {
  const len = payload.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([header, payload]);
  header[1] |= 0x80;
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i % 4];
  return Buffer.concat([header, key, masked]);
}

/** A hand-made client that parses server frames: {opcode, payload, text, closeCode}. */
export class TcpWsClient {
  static async open(port, path, options = {}) {
    const { socket, rest } = await tcpHandshake(port, path, options);
    return new TcpWsClient(socket, rest);
  }

  constructor(socket, initial) {
    this.socket = socket;
    this.rec = new Recorder("tcp ws client");
    this.frames = [];
    this.buf = Buffer.alloc(0);
    this.ended = new Promise((resolve) => socket.on("close", () => {
      this.rec.push("end", true);
      resolve();
    }));
    socket.on("error", () => {});
    socket.on("data", (d) => this.feed(d));
    if (initial && initial.length) this.feed(initial);
  }

  feed(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const opcode = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      const frame = { opcode, payload };
      if (opcode === 1) frame.text = payload.toString("utf8");
      if (opcode === 8 && payload.length >= 2) frame.closeCode = payload.readUInt16BE(0);
      this.frames.push(frame);
      this.rec.push("frame", frame);
    }
  }

  write(buf) {
    return new Promise((resolve) => this.socket.write(buf, () => resolve()));
  }

  waitFrame(pred = () => true, timeout = 10000) {
    return this.rec.wait("frame", pred, timeout);
  }

  waitClose(timeout = 10000) {
    return this.rec.wait("frame", (f) => f.opcode === 8, timeout);
  }

  destroy() {
    this.socket.destroy();
  }
}
