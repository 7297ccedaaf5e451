// Starts a real `hubcast serve` on a free port and hands out SDK and raw clients bound to it.
//
// startServer({args, env, keys}) spawns the binary named by HUBCAST_BINARY with
//   serve --port 0 --ports-file <tmp>/port --data-dir <tmp>/data --access-key <key>... --log-level warn
// plus `args`, waits (15 s deadline) for the ports file, and resolves to a handle:
//   {port, endpoint, connectionString, key, keys, pid, stop(), serviceClient(hub),
//    newClient(hub, tokenOptions, clientOptions), clientUrl(hub, tokenOptions), rest(...),
//    closeClients(), output()}
// Every SDK client and raw socket made through the handle is tracked; closeClients() (call it in
// afterEach) stops them, stop() (call it in after) also ends the process: SIGTERM, then SIGKILL
// after 5 s.
// Restarts: startServer({port, dataDir}) binds that port (default 0: any free one) and keeps its
// state in dataDir (default: a folder inside the handle's temporary dir, removed by stop(); a
// given dataDir is left alone). kill9() sends SIGKILL and resolves once the process has exited.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { WebPubSubClient, WebPubSubJsonProtocol } from "./sdk.mjs";

import { signJwt } from "./jwt.mjs";
import { openRaw } from "./raw.mjs";
import { Recorder } from "./wait.mjs";

export const API_VERSION = "2024-12-01";
export const JSON_PROTOCOL = "json.webpubsub.azure.v1";
export const RELIABLE_PROTOCOL = "json.reliable.webpubsub.azure.v1";

const liveChildren = new Set();
process.on("exit", () => {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** A fresh 44-character access key (base64 of 33 random bytes: no ';', no whitespace). */
export function newAccessKey() {
  return randomBytes(33).toString("base64");
}

let hubCounter = 0;
/** A hub name unique within this process, valid per the swagger regex. */
export function uniqueHub(prefix = "hub") {
  hubCounter += 1;
  return `${prefix}${process.pid}x${hubCounter}`;
}

let nameCounter = 0;
/** A short unique name for users and groups. */
export function uniqueName(prefix = "n") {
  nameCounter += 1;
  return `${prefix}-${nameCounter}-${randomBytes(3).toString("hex")}`;
}

// The ports file format is not pinned down: accept a bare number, JSON, key=value text or URLs.
function parsePortsFile(text) {
  const trimmed = text.trim();
  if (!trimmed) return null;
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  try {
    const parsed = JSON.parse(trimmed);
    const found = findPort(parsed);
    if (found) return found;
  } catch {
    // not JSON
  }
  const url = /:\/\/[^\s:/]+:(\d{2,5})/.exec(trimmed) ?? /:(\d{2,5})\b/.exec(trimmed);
  if (url) return Number(url[1]);
  const kv = /port\D{0,5}(\d{2,5})/i.exec(trimmed);
  if (kv) return Number(kv[1]);
  const any = /\b(\d{2,5})\b/.exec(trimmed);
  return any ? Number(any[1]) : null;
}

function findPort(value) {
  if (typeof value === "number" && Number.isInteger(value) && value > 0 && value < 65536) return value;
  if (typeof value === "string") return parsePortsFile(value);
  if (Array.isArray(value)) {
    for (const item of value) {
      const p = findPort(item);
      if (p) return p;
    }
    return null;
  }
  if (value && typeof value === "object") {
    for (const key of ["http", "port", "client", "listen", "api"]) {
      if (key in value) {
        const p = findPort(value[key]);
        if (p) return p;
      }
    }
    for (const item of Object.values(value)) {
      const p = findPort(item);
      if (p) return p;
    }
  }
  return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startServer({ args = [], env = {}, keys, port: fixedPort = 0, dataDir, startTimeout = 15000 } = {}) {
  const binary = process.env.HUBCAST_BINARY;
  if (!binary) throw new Error("HUBCAST_BINARY is not set (path to the hubcast executable)");
  const accessKeys = keys && keys.length ? keys : [newAccessKey()];
  const dir = mkdtempSync(join(tmpdir(), "hubcast-sdk-"));
  const portsFile = join(dir, "port");
  const argv = [
    "serve",
    "--port", String(fixedPort),
    "--ports-file", portsFile,
    "--data-dir", dataDir ?? join(dir, "data"),
    ...accessKeys.flatMap((k) => ["--access-key", k]),
    "--log-level", "warn",
    ...args,
  ];
  const child = spawn(binary, argv, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  liveChildren.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      liveChildren.delete(child);
      resolve(exitInfo);
    });
    child.on("error", (err) => {
      exitInfo = { code: null, signal: null, error: err };
      liveChildren.delete(child);
      resolve(exitInfo);
    });
  });
  const output = () =>
    `--- hubcast ${argv.join(" ")}\n--- stdout:\n${stdout}\n--- stderr:\n${stderr}\n--- exit: ${JSON.stringify(exitInfo)}`;

  const deadline = Date.now() + startTimeout;
  let port = null;
  while (Date.now() < deadline) {
    if (exitInfo) break;
    try {
      const first = readFileSync(portsFile, "utf8");
      const p = parsePortsFile(first);
      if (p) {
        await sleep(50); // the file may still be being written: read it twice
        const again = parsePortsFile(readFileSync(portsFile, "utf8"));
        if (again === p) {
          port = p;
          break;
        }
      }
    } catch {
      // not there yet
    }
    await sleep(50);
  }
  if (!port) {
    child.kill("SIGKILL");
    await Promise.race([exited, sleep(2000)]);
    const msg = exitInfo && !exitInfo.signal
      ? "hubcast exited before writing its ports file"
      : `hubcast wrote no usable ports file within ${startTimeout / 1000} s`;
    console.error(output());
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${msg}\n${output()}`);
  }

  const key = accessKeys[0];
  const endpoint = `http://127.0.0.1:${port}`;
  const connectionString = `Endpoint=${endpoint};AccessKey=${key};Version=1.0;`;
  const sdkClients = new Set();
  const rawSockets = new Set();

  const handle = {
    port,
    endpoint,
    connectionString,
    key,
    keys: accessKeys,
    pid: child.pid,
    dir,
    output,
    stdout: () => stdout,
    stderr: () => stderr,
    alive: () => exitInfo === null,
    /** Resolves to {code, signal} once the process has exited (for whatever reason). */
    exited: () => exited,

    serviceClient(hub, { connectionString: cs = connectionString, ...opts } = {}) {
      return new WebPubSubServiceClient(cs, hub, {
        allowInsecureConnection: true,
        retryOptions: { maxRetries: 0 },
        ...opts,
      });
    },

    /** Client URL (ws://.../client/hubs/hub?access_token=...) minted by the SDK. */
    async clientUrl(hub, tokenOptions = {}) {
      return (await handle.serviceClient(hub).getClientAccessToken(tokenOptions)).url;
    },

    /**
     * A WebPubSubClient whose URL comes from getClientAccessToken(tokenOptions). Resolves after
     * start() and the `connected` event unless {start:false}. `protocol: "json"` in
     * clientOptions selects WebPubSubJsonProtocol (default is the SDK default: reliable).
     */
    async newClient(hub, tokenOptions = {}, clientOptions = {}, { start = true } = {}) {
      const sc = handle.serviceClient(hub);
      const opts = { ...clientOptions };
      if (opts.protocol === "json") opts.protocol = WebPubSubJsonProtocol();
      const client = new WebPubSubClient(
        { getClientAccessUrl: async () => (await sc.getClientAccessToken(tokenOptions)).url },
        { messageRetryOptions: { maxRetries: 0 }, ...opts },
      );
      const rec = new Recorder(`client(${tokenOptions.userId ?? "anonymous"}@${hub})`);
      client.on("connected", (e) => rec.push("connected", e));
      client.on("disconnected", (e) => rec.push("disconnected", e));
      client.on("stopped", (e) => rec.push("stopped", e));
      client.on("group-message", (e) => {
        rec.push("group", e.message);
        rec.push("message", e.message);
      });
      client.on("server-message", (e) => {
        rec.push("server", e.message);
        rec.push("message", e.message);
      });
      client.on("rejoin-group-failed", (e) => rec.push("rejoin-group-failed", e));
      sdkClients.add(client);
      const wrapped = { client, rec, hub, userId: tokenOptions.userId, connectionId: undefined };
      if (start) {
        await client.start();
        const connected = await rec.wait("connected", () => true, 10000);
        wrapped.connectionId = connected.connectionId;
      }
      return wrapped;
    },

    /** A raw `ws` socket (see raw.mjs) tracked for cleanup. */
    async raw(url, options = {}) {
      const sock = await openRaw(url, options);
      rawSockets.add(sock);
      return sock;
    },

    /** A raw socket to hub with an SDK-minted token; `protocol` may be undefined (raw client). */
    async rawClient(hub, tokenOptions = {}, protocol = JSON_PROTOCOL, options = {}) {
      const url = await handle.clientUrl(hub, tokenOptions);
      const sock = await handle.raw(url, { protocols: protocol, ...options });
      sock.url = url;
      if (protocol && protocol.startsWith("json.")) {
        const connected = await sock.waitJson((m) => m.type === "system" && m.event === "connected");
        sock.connectionId = connected.connectionId;
        sock.reconnectionToken = connected.reconnectionToken;
        sock.connectedMessage = connected;
      }
      return sock;
    },

    /** Sign a REST bearer token the way the JS SDK does (aud = full URL). */
    restToken(url, { key: k = key, alg = "HS256", exp, aud = url, extra = {} } = {}) {
      const now = Math.floor(Date.now() / 1000);
      return signJwt({ aud, iat: now, exp: exp ?? now + 3600, ...extra }, k, { alg });
    },

    /**
     * Raw HTTP to the REST API. path starts with "/api/...". query: object (arrays repeat).
     * auth: true (SDK-like token), false (no header), or a string (the whole header value).
     */
    async rest(method, path, { query = {}, body, contentType, headers = {}, auth = true, apiVersion = true } = {}) {
      const url = new URL(endpoint + path);
      if (apiVersion) url.searchParams.append("api-version", API_VERSION);
      for (const [k, v] of Object.entries(query)) {
        for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(item));
      }
      const h = { ...headers };
      if (auth === true) h.authorization = `Bearer ${handle.restToken(url.toString())}`;
      else if (typeof auth === "string") h.authorization = auth;
      if (contentType) h["content-type"] = contentType;
      const res = await fetch(url, { method, headers: h, body });
      const text = method === "HEAD" ? "" : await res.text();
      let json;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, text, json, url: url.toString() };
    },

    async closeClients() {
      for (const c of sdkClients) {
        try {
          c.stop();
        } catch {
          // ignore
        }
      }
      sdkClients.clear();
      for (const s of rawSockets) s.terminate();
      rawSockets.clear();
    },

    /** SIGKILL (no shutdown at all, like kill -9); resolves to {code, signal} once it has exited. */
    async kill9() {
      if (exitInfo === null) child.kill("SIGKILL");
      return exited;
    },

    async stop() {
      await handle.closeClients();
      if (exitInfo === null) {
        child.kill("SIGTERM");
        const done = await Promise.race([exited, sleep(5000).then(() => null)]);
        if (!done) {
          child.kill("SIGKILL");
          await Promise.race([exited, sleep(5000)]);
        }
      }
      rmSync(dir, { recursive: true, force: true });
      return exitInfo;
    },
  };
  return handle;
}
