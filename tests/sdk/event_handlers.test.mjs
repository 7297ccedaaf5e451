// PROTOCOL.md section 8, rows 19-21, 30 and 64-76: upstream event handlers. A real
// @azure/web-pubsub-express WebPubSubEventHandler in an express app (lib/upstream.mjs, on
// 127.0.0.1:0, SDK default path /api/webpubsub/hubs/{hub}/) sits behind a real
// `hubcast serve --event-handler 'HUB=http://127.0.0.1:PORT/api/webpubsub/hubs/{hub}/'`, driven by
// the official client and server SDKs and by raw `ws` sockets. Each test scripts the handler's
// handleConnect / onConnected / onDisconnected / handleUserEvent and checks what the handler
// saw (the express middleware in front of it records the raw request headers) and what the
// clients got.
//
// Most tests share one server whose hubs come from a pool, each with its own --event-handler.
// Tests that need other options (timeouts, --public-host, --config + SIGHUP, a dead upstream)
// start their own. The last two tests are load-shaped: a slow upstream must delay only its own
// connection, and a dead upstream must leave no half-open connection behind.
//
// Raw handshakes use upgrade() below rather than lib/raw.mjs tryUpgrade: see its comment.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";

import WebSocket from "ws";

import { assertHealthy, expectAckError, toBuf } from "./lib/checks.mjs";
import { RawSocket } from "./lib/raw.mjs";
import { JSON_PROTOCOL, RELIABLE_PROTOCOL, newAccessKey, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { startUpstream } from "./lib/upstream.mjs";
import { sleep, waitUntil, withDeadline } from "./lib/wait.mjs";

const T = { timeout: 60000 };
const KEYS = [newAccessKey(), newAccessKey()];
const POOL = Array.from({ length: 40 }, () => uniqueHub("ev"));
let poolNext = 0;
/** A hub of the shared server that has the shared upstream as its only event handler. */
function poolHub() {
  assert.ok(poolNext < POOL.length, "hub pool exhausted: make POOL larger");
  return POOL[poolNext++];
}

// Hubs of the shared server with a special handler configuration.
const HUB_TPL = uniqueHub("tpl"); // URL template with {event}
const HUB_BLOCKED = uniqueHub("blocked"); // allowedEndpoints of another host
const HUB_ALLOWED = uniqueHub("allowed"); // allowedEndpoints naming 127.0.0.1
const HUB_ROUTE = uniqueHub("route"); // two handlers: user=/system= routing
const HUB_RETRY = uniqueHub("retry");
const HUB_BARE = uniqueHub("bare"); // SDK handler with no callbacks at all
const HUB_NOMSG = uniqueHub("nomsg"); // a handler whose user pattern does not match `message`
const HUB_COMMA = uniqueHub("comma"); // WebHook-Allowed-Origin as one comma-separated header
const HUB_ANON = uniqueHub("anon"); // --anonymous-connect HUB=allow

let up; // main upstream app
let upB; // second upstream app (routing test)
let srv;

before(async () => {
  up = await startUpstream({ name: "upstream" });
  upB = await startUpstream({ name: "upstream-b" });
  const args = [
    ...POOL.flatMap((h) => ["--event-handler", `${h}=${up.template}`]),
    "--event-handler", `${HUB_TPL}=${up.base}/api/webpubsub/hubs/{hub}/{event}`,
    "--event-handler", `${HUB_BLOCKED}=${up.template}`,
    "--event-handler", `${HUB_ALLOWED}=${up.template}`,
    "--event-handler", `${HUB_ROUTE}=${upB.template};user=Echo,Other;system=connected`,
    "--event-handler", `${HUB_ROUTE}=${up.template}`,
    "--event-handler", `${HUB_RETRY}=${up.template}`,
    "--event-handler", `${HUB_BARE}=${up.template}`,
    "--event-handler", `${HUB_NOMSG}=${up.template};user=notmessage`,
    "--event-handler", `${HUB_COMMA}=${up.template}`,
    "--event-handler", `${HUB_ANON}=${up.template}`,
    "--anonymous-connect", `${HUB_ANON}=allow`,
    "--log-level", "info", // its log is printed when the slow-connect test fails
  ];
  srv = await startServer({ args, keys: KEYS });
});
afterEach(async () => srv.closeClients());
after(async () => {
  if (srv) await srv.stop();
  if (up) await up.close();
  if (upB) await upB.close();
});

// ---------------------------------------------------------------------------------------------
// helpers

const SEND = "webpubsub.sendToGroup";
const JOIN = "webpubsub.joinLeaveGroup";

/** A JSON-protocol SDK client that does not reconnect (so one connection = one connectionId). */
function jsonClient(s, hub, token = {}, opts = {}) {
  return s.newClient(hub, token, { protocol: "json", autoReconnect: false, ...opts });
}

const hmac = (key, connectionId) => `sha256=${createHmac("sha256", Buffer.from(key, "utf8")).update(connectionId, "utf8").digest("hex")}`;

/** The CloudEvents headers every POST to a handler carries (PROTOCOL.md 5.2). */
function assertCeHeaders(entry, { hub, connectionId, type, eventName, userId, subprotocol, origin = "127.0.0.1" }) {
  const h = entry.headers;
  const where = `${entry.method} ${entry.url} ${JSON.stringify(h)}`;
  assert.equal(entry.method, "POST", where);
  assert.equal(h["ce-specversion"], "1.0", where);
  assert.equal(h["ce-awpsversion"], "1.0", where);
  assert.equal(h["ce-type"], type, where);
  assert.equal(h["ce-hub"], hub, where);
  assert.equal(h["ce-connectionid"], connectionId, where);
  assert.equal(h["ce-eventname"], eventName, where);
  assert.equal(h["ce-source"], `/hubs/${hub}/client/${connectionId}`, where);
  assert.ok(h["ce-id"] !== undefined && h["ce-id"] !== "", `ce-id present: ${where}`);
  assert.ok(!Number.isNaN(Date.parse(h["ce-time"])) && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(h["ce-time"]), `ce-time is ISO-8601 UTC: ${h["ce-time"]}`);
  assert.equal(h["webhook-request-origin"], origin, where);
  assert.ok(h["ce-signature"], `ce-signature present: ${where}`);
  if (userId === undefined) assert.equal(h["ce-userid"], undefined, `no ce-userId for anonymous: ${where}`);
  else assert.equal(h["ce-userid"], userId, where);
  if (subprotocol !== undefined) assert.equal(h["ce-subprotocol"], subprotocol, where);
}

/** Connect callbacks of the handler for a token user (raw clients have no connectionId yet). */
function connectOf(h, userId) {
  return h.wait("connect", undefined, 15000, (e) => (e.request.claims?.sub ?? [])[0] === userId);
}

/**
 * Like lib/raw.mjs tryUpgrade ({status, headers, body} when refused, {socket} when upgraded), but a
 * refused handshake's TCP connection is closed at once. (tryUpgrade leaves it open, and hubcast
 * answers a refused upgrade with Connection: Keep-Alive, so each refusal would pin one of the
 * server's --http-threads workers for its 60 s keep-alive: enough refusals stall every handshake
 * and REST call of the shared server.)
 */
function upgrade(url, { protocols, headers = {}, timeout = 10000 } = {}) {
  return withDeadline(
    new Promise((resolve, reject) => {
      const ws = protocols === undefined ? new WebSocket(url, { headers }) : new WebSocket(url, protocols, { headers });
      const sock = new RawSocket(ws);
      ws.on("unexpected-response", (req, res) => {
        const tcp = res.socket ?? req.socket;
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        const done = () => {
          resolve({ status: res.statusCode, headers: res.headers, body });
          if (tcp) tcp.destroy();
          req.destroy();
        };
        res.on("end", done);
        res.on("error", done);
      });
      ws.on("open", () => resolve({ socket: sock }));
      ws.on("error", (err) => reject(err));
    }),
    timeout,
    `the upgrade of ${url.split("?")[0]}`,
  );
}

/** A raw WebSocket that offers no subprotocol (a "simple" client), tracked for cleanup. */
async function openPlain(s, hub, token) {
  const url = await s.clientUrl(hub, token);
  const sock = await s.raw(url, {});
  sock.url = url;
  return sock;
}

/** A raw client (no subprotocol) whose connectionId is learnt from the handler's connect call. */
async function rawPlain(s, h, hub, userId = uniqueName("raw"), token = {}) {
  const sock = await openPlain(s, hub, { userId, ...token });
  assert.equal(sock.protocol, "", "a raw client gets no subprotocol");
  const c = await connectOf(h, userId);
  sock.connectionId = c.request.context.connectionId;
  sock.userId = userId;
  return sock;
}

/** Waits until every event count settles: a full connect/connected/disconnected cycle of another
 * connection on the same hub has been seen, so events of earlier connections had time to come. */
async function settle(s, h, hub, hDisconnected = h) {
  const user = uniqueName("settle");
  const c = await jsonClient(s, hub, { userId: user });
  await h.wait("connected", c.connectionId);
  c.client.stop();
  await hDisconnected.wait("disconnected", c.connectionId);
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ---------------------------------------------------------------------------------------------
// validation (row 64), headers (65), signature (66)

test("row 64: the handler URL is validated with OPTIONS, WebHook-Request-Origin and ce-awpsversion, {event}=validate", T, async () => {
  const h = up.handler(HUB_TPL);
  const c = await jsonClient(srv, HUB_TPL, { userId: "validator" });
  const opts = h.validations();
  assert.ok(opts.length >= 1, `an OPTIONS request came before the first event; requests: ${h.requests.map((r) => `${r.method} ${r.url}`).join(", ")}`);
  const first = h.requests[0];
  assert.equal(first.method, "OPTIONS", "validation comes before the first event");
  assert.equal(first.path, `/api/webpubsub/hubs/${HUB_TPL}/validate`);
  assert.equal(first.headers["webhook-request-origin"], "127.0.0.1");
  assert.equal(first.headers["ce-awpsversion"], "1.0");
  assert.equal(first.status, 200);
  assert.equal(first.responseHeaders["webhook-allowed-origin"], "*");
  // {event} resolves to the event name for the events themselves.
  const connect = await h.wait("connect", c.connectionId);
  assert.equal(connect.http.path, `/api/webpubsub/hubs/${HUB_TPL}/connect`);
  const connected = await h.wait("connected", c.connectionId);
  assert.equal(connected.http.path, `/api/webpubsub/hubs/${HUB_TPL}/connected`);
  await c.client.sendEvent("Some.Event", "x", "text");
  const user = await h.wait("user", c.connectionId);
  assert.equal(user.http.path, `/api/webpubsub/hubs/${HUB_TPL}/Some.Event`);
});

test("row 64: a handler whose WebHook-Allowed-Origin does not allow our origin is never called (connect -> 500)", T, async () => {
  const h = up.handler(HUB_BLOCKED, { allowedEndpoints: ["https://other.example.com"] });
  const url = await srv.clientUrl(HUB_BLOCKED, { userId: "blocked" });
  const res = await upgrade(url, { protocols: JSON_PROTOCOL, timeout: 40000 });
  assert.equal(res.status, 500, `the handshake is refused with 500, got ${JSON.stringify(res.status ?? "an upgrade")}`);
  const opts = h.validations();
  assert.ok(opts.length >= 1, "the handler was validated");
  assert.deepEqual(opts[0].responseHeaders["webhook-allowed-origin"], ["other.example.com"]);
  // The SDK client fails too, and the handler's handleConnect never ran.
  await assert.rejects(jsonClient(srv, HUB_BLOCKED, { userId: "blocked2" }), /500/);
  assert.deepEqual(h.events("connect"), [], "handleConnect is never called");
  assert.deepEqual(h.requests.filter((r) => r.method === "POST"), [], "no event POST reaches a handler that failed validation");
});

test("row 64: allowedEndpoints naming the service's origin (127.0.0.1) is accepted", T, async () => {
  const h = up.handler(HUB_ALLOWED, { allowedEndpoints: ["http://127.0.0.1"] });
  const c = await jsonClient(srv, HUB_ALLOWED, { userId: "allowed" });
  await h.wait("connected", c.connectionId);
  assert.deepEqual(h.validations()[0].responseHeaders["webhook-allowed-origin"], ["127.0.0.1"]);
});

test("row 64: a comma-separated WebHook-Allowed-Origin that lists our origin is accepted", T, async () => {
  const h = up.handler(HUB_COMMA);
  h.script.intercept = (req, res) => {
    if (req.method !== "OPTIONS") return false;
    res.setHeader("WebHook-Allowed-Origin", "other.example.com, 127.0.0.1");
    res.status(200).end();
    return true;
  };
  const c = await jsonClient(srv, HUB_COMMA, { userId: "comma" });
  await h.wait("connected", c.connectionId);
});

test("row 64: --public-host sets WebHook-Request-Origin, and allowedEndpoints of that host is accepted", T, async () => {
  const upx = await startUpstream({ name: "upstream-public-host" });
  const hub = uniqueHub("pub");
  const h = upx.handler(hub, { allowedEndpoints: ["https://hubcast.example.org"] });
  const s = await startServer({ args: ["--event-handler", `${hub}=${upx.template}`, "--public-host", "hubcast.example.org"] });
  try {
    const c = await jsonClient(s, hub, { userId: "pub" });
    const connect = await h.wait("connect", c.connectionId);
    assert.equal(h.validations()[0].headers["webhook-request-origin"], "hubcast.example.org");
    assert.equal(connect.http.headers["webhook-request-origin"], "hubcast.example.org");
    assert.equal(connect.request.context.origin, "hubcast.example.org");
  } finally {
    await s.stop();
    await upx.close();
  }
});

test("row 65: connect, connected, user events and disconnected carry the CloudEvents headers", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const c = await srv.newClient(hub, { userId: "hdr-user" }); // SDK default: reliable protocol
  const id = c.connectionId;
  const common = { hub, connectionId: id, userId: "hdr-user", subprotocol: RELIABLE_PROTOCOL };
  const connect = await h.wait("connect", id);
  // connect: the subprotocol is not chosen yet (the handler may choose it), so ce-subprotocol is
  // optional there; when present it must be one the client offered.
  assertCeHeaders(connect.http, { ...common, subprotocol: undefined, type: "azure.webpubsub.sys.connect", eventName: "connect" });
  const offered = connect.http.headers["ce-subprotocol"];
  if (offered !== undefined) assert.equal(offered, RELIABLE_PROTOCOL);
  assert.match(connect.http.headers["content-type"], /^application\/json/);
  const connected = await h.wait("connected", id);
  assertCeHeaders(connected.http, { ...common, type: "azure.webpubsub.sys.connected", eventName: "connected" });
  assert.match(connected.http.headers["content-type"], /^application\/json/);
  await c.client.sendEvent("myEvent", { a: 1 }, "json");
  const user = await h.wait("user", id);
  assertCeHeaders(user.http, { ...common, type: "azure.webpubsub.user.myEvent", eventName: "myEvent" });
  c.client.stop();
  const disc = await h.wait("disconnected", id);
  assertCeHeaders(disc.http, { ...common, type: "azure.webpubsub.sys.disconnected", eventName: "disconnected" });
  // ce-id: distinct per event of one connection.
  const ids = [connect, connected, user, disc].map((e) => e.http.headers["ce-id"]);
  assert.equal(new Set(ids).size, ids.length, `ce-id differs between events: ${ids}`);
  // Anonymous connections carry no ce-userId; raw clients without subprotocol no ce-subprotocol.
  const raw = await openPlain(srv, hub, {});
  const anon = await h.wait("connected", undefined, 15000, (e) => e.request.context.connectionId !== id && e.request.context.userId === undefined);
  assertCeHeaders(anon.http, { hub, connectionId: anon.request.context.connectionId, userId: undefined, type: "azure.webpubsub.sys.connected", eventName: "connected" });
  assert.equal(anon.http.headers["ce-subprotocol"], undefined, "no ce-subprotocol for a raw client");
  raw.close();
});

test("row 66: ce-signature holds sha256=HMAC(key, connectionId) for both access keys", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const c = await jsonClient(srv, hub, { userId: "signed" });
  const id = c.connectionId;
  await h.wait("connected", id);
  await c.client.sendEvent("e", "x", "text");
  await h.wait("user", id);
  c.client.stop();
  await h.wait("disconnected", id);
  const posts = h.requests.filter((r) => r.method === "POST" && r.headers["ce-connectionid"] === id);
  assert.equal(posts.length, 4, "connect, connected, user event, disconnected");
  const other = newAccessKey();
  for (const r of posts) {
    const sig = r.headers["ce-signature"];
    const parts = sig.split(",").map((p) => p.trim());
    // A validator accepts the request if any entry matches the key it knows: check each key.
    for (const [i, key] of KEYS.entries()) {
      assert.ok(parts.includes(hmac(key, id)), `${r.headers["ce-type"]}: entry for key #${i + 1} in ${sig}`);
    }
    assert.ok(!parts.includes(hmac(other, id)), "a key the server does not have matches nothing");
    for (const p of parts) assert.match(p, /^sha256=[0-9a-f]{64}$/, "lower-case hex");
    assert.equal(parts.length, 2, "one entry per configured key");
  }
});

// ---------------------------------------------------------------------------------------------
// connect (rows 67-69)

test("row 67: connect accepted with 204 (res.success()); body has claims, query, headers and subprotocols", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const group = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "alice", roles: [SEND], groups: [group] });
  const connect = await h.wait("connect", c.connectionId);
  assert.equal(connect.http.status, 204);
  const req = connect.request;
  assert.deepEqual(req.claims.sub, ["alice"]);
  assert.ok(Array.isArray(req.claims.role) && req.claims.role.includes(SEND), `role claim: ${JSON.stringify(req.claims)}`);
  assert.ok(Array.isArray(req.query.access_token) && req.query.access_token.length === 1, `query: ${JSON.stringify(req.query)}`);
  assert.deepEqual(req.queries, req.query);
  const headerNames = Object.keys(req.headers).map((k) => k.toLowerCase());
  assert.ok(headerNames.includes("host"), `headers: ${JSON.stringify(req.headers)}`);
  for (const v of Object.values(req.headers)) assert.ok(Array.isArray(v), "header values are string arrays");
  assert.deepEqual(req.subprotocols, [RELIABLE_PROTOCOL]);
  assert.equal(req.context.userId, "alice");
  // Accepted as is: token user and groups stay.
  assert.equal((await c.rec.wait("connected")).userId, "alice");
  assert.equal(await srv.serviceClient(hub).groupExists(group), true);
});

test("row 68: connect accepted with 200 and a JSON body (res.success({})) and with the SDK's empty 200", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleConnect = (req, res) => res.success({});
  const c = await jsonClient(srv, hub, { userId: "bob" });
  const connect = await h.wait("connect", c.connectionId);
  assert.equal(connect.http.status, 200);
  assert.equal((await c.rec.wait("connected")).userId, "bob", "an empty JSON answer changes nothing");
  // No handleConnect at all: the express SDK answers 200 with an empty body.
  const bareHub = poolHub();
  const bare = up.handler(bareHub, { bare: true });
  const b = await jsonClient(srv, bareHub, { userId: "carol" });
  const post = bare.requests.find((r) => r.method === "POST" && r.headers["ce-type"] === "azure.webpubsub.sys.connect");
  assert.equal(post.status, 200);
  assert.equal((await b.rec.wait("connected")).userId, "carol");
});

test("row 69: connect rejected with 401: the SDK client's start() fails and a raw handshake gets 401", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleConnect = (req, res) => res.fail(401, "go away");
  await assert.rejects(jsonClient(srv, hub, { userId: "rejected" }), /401/);
  const url = await srv.clientUrl(hub, { userId: "rejected-raw" });
  const res = await upgrade(url, { protocols: JSON_PROTOCOL });
  assert.equal(res.status, 401);
  const plain = await upgrade(url, {});
  assert.equal(plain.status, 401, "raw client (no subprotocol) too");
  assert.equal(h.events("connect").length, 3, "a 4xx answer is not retried");
});

test("row 69: connect rejected with 403 and 400 keep their status; 5xx becomes 500", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleConnect = (req, res) => {
    const who = req.claims.sub[0];
    if (who === "forbidden") return res.fail(403, "no");
    if (who === "bad") return res.fail(400, "bad");
    if (who === "broken") return res.fail(502, "upstream broke");
    return res.success();
  };
  await assert.rejects(jsonClient(srv, hub, { userId: "forbidden" }), /403/);
  const status = async (userId) => (await upgrade(await srv.clientUrl(hub, { userId }), { protocols: JSON_PROTOCOL, timeout: 40000 })).status;
  assert.equal(await status("forbidden"), 403);
  assert.equal(await status("bad"), 400);
  assert.equal(await status("broken"), 500);
  // Rejected connects produce neither connected nor disconnected.
  await settle(srv, h, hub);
  const rejectedIds = h.events("connect").filter((e) => ["forbidden", "bad", "broken"].includes(e.request.claims.sub[0])).map((e) => e.request.context.connectionId);
  assert.ok(rejectedIds.length >= 4);
  for (const id of rejectedIds) {
    assert.deepEqual(h.events("connected", id), [], "no connected for a rejected connect");
    assert.deepEqual(h.events("disconnected", id), [], "no disconnected for a rejected connect");
  }
});

test("row 68: connect answer rewrites userId", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleConnect = (req, res) => res.success({ userId: `${req.claims.sub[0]}-rewritten` });
  const c = await jsonClient(srv, hub, { userId: "orig" });
  assert.equal((await c.rec.wait("connected")).userId, "orig-rewritten");
  const sc = srv.serviceClient(hub);
  assert.equal(await sc.userExists("orig-rewritten"), true);
  assert.equal(await sc.userExists("orig"), false);
  await c.client.sendEvent("who", "x", "text");
  const user = await h.wait("user", c.connectionId);
  assert.equal(user.http.headers["ce-userid"], "orig-rewritten");
  await sc.sendToUser("orig-rewritten", { hi: 1 });
  await c.rec.wait("server", (m) => m.data && m.data.hi === 1);
});

test("row 68: connect answer groups are joined: a group message arrives without joining, token groups are replaced", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const handlerGroup = uniqueName("hg");
  const tokenGroup = uniqueName("tg");
  h.script.handleConnect = (req, res) => res.success({ groups: [handlerGroup] });
  const c = await jsonClient(srv, hub, { userId: "grouped", groups: [tokenGroup] });
  const sc = srv.serviceClient(hub);
  await sc.group(handlerGroup).sendToAll({ via: "rest" });
  await c.rec.wait("group", (m) => m.group === handlerGroup && m.data.via === "rest");
  const sender = await jsonClient(srv, hub, { userId: "sender", roles: [SEND] });
  await sender.client.sendToGroup(handlerGroup, "from a client", "text");
  await c.rec.wait("group", (m) => m.group === handlerGroup && m.data === "from a client");
  assert.equal(await sc.groupExists(tokenGroup), false, "a non-empty groups answer replaces the token's groups");
});

test("row 68: connect answer roles: a sendToGroup the token alone would not allow succeeds; roles replace the token's", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const g = uniqueName("rg");
  const other = uniqueName("og");
  h.script.handleConnect = (req, res) => {
    if (req.claims.sub[0] === "plain") return res.success();
    return res.success({ roles: [`${SEND}.${g}`, `${JOIN}.${g}`] });
  };
  const listener = await jsonClient(srv, hub, { userId: "listener", groups: [g, other] });
  // Control: the same token without a granting answer is refused.
  const plain = await jsonClient(srv, hub, { userId: "plain" });
  await expectAckError(plain.client.sendToGroup(g, "nope", "text"), "Forbidden");
  const granted = await jsonClient(srv, hub, { userId: "granted" });
  await granted.client.sendToGroup(g, "allowed", "text");
  await listener.rec.wait("group", (m) => m.group === g && m.data === "allowed");
  await granted.client.joinGroup(g);
  // Replacement: a token allowed to send to every group, rewritten to one group only.
  const wide = await jsonClient(srv, hub, { userId: "wide", roles: [SEND] });
  await expectAckError(wide.client.sendToGroup(other, "not any more", "text"), "Forbidden");
  await wide.client.sendToGroup(g, "still fine", "text");
  await listener.rec.wait("group", (m) => m.group === g && m.data === "still fine");
});

test("row 68: connect answer subprotocol selects one of the offered subprotocols", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleConnect = (req, res) => res.success({ subprotocol: JSON_PROTOCOL });
  const url = await srv.clientUrl(hub, { userId: "sub" });
  const res = await upgrade(url, { protocols: [RELIABLE_PROTOCOL, JSON_PROTOCOL] });
  assert.ok(res.socket, `upgraded: ${JSON.stringify(res.status)}`);
  const sock = res.socket;
  try {
    assert.equal(sock.protocol, JSON_PROTOCOL, "the handler's choice wins over the first offered");
    const connected = await sock.waitJson((m) => m.type === "system" && m.event === "connected");
    assert.equal(connected.reconnectionToken, undefined, "plain JSON protocol: no reconnection token");
    const connect = await h.wait("connect", connected.connectionId);
    assert.deepEqual(connect.request.subprotocols, [RELIABLE_PROTOCOL, JSON_PROTOCOL]);
    const connEvt = await h.wait("connected", connected.connectionId);
    assert.equal(connEvt.http.headers["ce-subprotocol"], JSON_PROTOCOL);
  } finally {
    sock.terminate();
  }
});

test("row 68: connect answers: 200 with a JSON null accepts unchanged, malformed JSON gives 500", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleConnect = (req, res) => res.success(null);
  // The SDK's success(null) is 200 with body "null": accepted as is.
  const c = await jsonClient(srv, hub, { userId: "null-body" });
  assert.equal((await c.rec.wait("connected")).userId, "null-body");
  const nullPost = h.requests.find((r) => r.headers["ce-type"] === "azure.webpubsub.sys.connect" && r.status === 200);
  assert.ok(nullPost, "answered 200");
  // Malformed JSON: answer it from the middleware before the SDK.
  h.script.intercept = (req, res) => {
    if (req.headers["ce-type"] !== "azure.webpubsub.sys.connect") return false;
    res.status(200).type("application/json").send("{not json");
    return true;
  };
  const res = await upgrade(await srv.clientUrl(hub, { userId: "garbage" }), { protocols: JSON_PROTOCOL, timeout: 40000 });
  assert.equal(res.status, 500, "a connect answer that is not JSON refuses the client with 500");
  // groups that are not strings, or an empty group name.
  h.script.intercept = (req, res) => {
    if (req.headers["ce-type"] !== "azure.webpubsub.sys.connect") return false;
    res.status(200).json({ groups: [""] });
    return true;
  };
  const bad = await upgrade(await srv.clientUrl(hub, { userId: "badgroup" }), { protocols: JSON_PROTOCOL, timeout: 40000 });
  assert.equal(bad.status, 500, "an invalid group name in the connect answer refuses the client with 500");
  h.script.intercept = null;
  await settle(srv, h, hub);
  const sc = srv.serviceClient(hub);
  assert.equal(await sc.userExists("garbage"), false);
  assert.equal(await sc.userExists("badgroup"), false);
});

test("row 68: an empty roles array removes the token's roles; an empty groups array keeps the token's groups", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const g = uniqueName("tg");
  h.script.handleConnect = (req, res) => res.success({ roles: [], groups: [] });
  const c = await jsonClient(srv, hub, { userId: "emptied", roles: [SEND], groups: [g] });
  await expectAckError(c.client.sendToGroup(g, "x", "text"), "Forbidden");
  assert.equal(await srv.serviceClient(hub).groupExists(g), true, "token groups stay with groups: []");
});

test("row 8/67: anonymous connect allowed per hub: the handler sees the query and names the user", T, async () => {
  const h = up.handler(HUB_ANON);
  h.script.handleConnect = (req, res) => {
    const name = req.queries.name?.[0];
    if (!name) return res.fail(401, "who are you");
    return res.success({ userId: name, groups: ["lobby"] });
  };
  const base = `ws://127.0.0.1:${srv.port}/client/hubs/${HUB_ANON}`;
  const res = await upgrade(`${base}?name=zoe`, { protocols: JSON_PROTOCOL });
  assert.ok(res.socket, `upgraded: ${res.status} ${res.body}`);
  const connected = await res.socket.waitJson((m) => m.type === "system" && m.event === "connected");
  assert.equal(connected.userId, "zoe");
  const connect = await h.wait("connect", connected.connectionId);
  assert.deepEqual(connect.request.claims ?? {}, {}, "no token, no claims");
  assert.equal(connect.http.headers["ce-userid"], undefined, "no ce-userId before the handler named the user");
  assert.equal(await srv.serviceClient(HUB_ANON).groupExists("lobby"), true);
  res.socket.terminate();
  const refused = await upgrade(base, { protocols: JSON_PROTOCOL });
  assert.equal(refused.status, 401, "the handler refuses an anonymous client without a name");
  // A hub without the policy refuses anonymous clients before calling its handler.
  const other = poolHub();
  const ho = up.handler(other);
  const denied = await upgrade(`ws://127.0.0.1:${srv.port}/client/hubs/${other}?name=x`, { protocols: JSON_PROTOCOL });
  assert.equal(denied.status, 401);
  assert.deepEqual(ho.requests.filter((r) => r.method === "POST"), [], "the handler of a deny hub is not asked");
});

test("row 65: CR/LF in an event name or a user id never becomes an extra header at the handler", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const injectedAnywhere = () => h.requests.filter((r) => Object.keys(r.headers).some((k) => k.startsWith("x-injected")));
  const c = await jsonClient(srv, hub, { userId: "plain-user" });
  let outcome;
  try {
    await c.client.sendEvent("evil\r\nx-injected-event: yes", "x", "text");
    outcome = "acked";
  } catch (e) {
    outcome = `error ${e.errorDetail?.name ?? e.message}`;
  }
  console.log(`event name with CR/LF: ${outcome}`);
  // A token whose sub holds CR/LF (the SDK signs whatever it is given).
  const url = await srv.clientUrl(hub, { userId: "u\r\nx-injected-user: yes" });
  const res = await upgrade(url, { protocols: JSON_PROTOCOL, timeout: 40000 });
  console.log(`user id with CR/LF: ${res.socket ? "upgraded" : `HTTP ${res.status}`}`);
  if (res.socket) res.socket.terminate();
  await c.client.sendEvent("after", "y", "text");
  await h.wait("user", c.connectionId, 15000, (e) => e.request.context.eventName === "after");
  assert.deepEqual(injectedAnywhere().map((r) => r.headers), [], "no injected header reached the handler");
  for (const r of h.requests) {
    for (const [k, v] of Object.entries(r.headers)) assert.ok(!/[\r\n]/.test(String(v)), `header ${k} has no CR/LF`);
  }
});

test("row 69/71: a client that leaves while its connect call is pending leaves no connection behind", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  let release;
  const held = new Promise((r) => (release = r));
  h.script.handleConnect = async (req, res) => {
    if (req.claims.sub[0] === "leaver") await held;
    res.success({ groups: ["left-behind"] });
  };
  const url = await srv.clientUrl(hub, { userId: "leaver" });
  const ws = new WebSocket(url, JSON_PROTOCOL);
  ws.on("error", () => {});
  ws.on("unexpected-response", () => {});
  const connect = await connectOf(h, "leaver");
  ws.terminate(); // gone before the handler answered
  await sleep(100);
  release();
  await waitUntil(() => connect.http.status !== undefined, { what: "the connect answer" });
  await settle(srv, h, hub);
  const id = connect.request.context.connectionId;
  const sc = srv.serviceClient(hub);
  assert.equal(await sc.userExists("leaver"), false, "no connection of the user");
  assert.equal(await sc.groupExists("left-behind"), false, "no group member left");
  assert.equal(await sc.connectionExists(id), false);
  const connected = h.events("connected", id).length;
  const disconnected = h.events("disconnected", id).length;
  console.log(`client gone during connect: connected x${connected}, disconnected x${disconnected}`);
  assert.equal(disconnected, connected, "a disconnected for every connected (both 0 or both 1)");
});

// ---------------------------------------------------------------------------------------------
// connected / disconnected (rows 70-71)

test("row 70/71: connected and disconnected exactly once per connection (client stop, REST close, raw close, drop)", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const sc = srv.serviceClient(hub);
  // (1) reliable SDK client, stop()
  const a = await srv.newClient(hub, { userId: "stopper" });
  const conn = await h.wait("connected", a.connectionId);
  assert.deepEqual(conn.request.context.connectionId, a.connectionId);
  a.client.stop();
  const dA = await h.wait("disconnected", a.connectionId);
  assert.equal(typeof dA.request.reason, "string");
  assert.ok(dA.at >= conn.at, "disconnected after connected");
  // (2) JSON client closed through REST with a reason
  const b = await jsonClient(srv, hub, { userId: "closed" });
  await h.wait("connected", b.connectionId);
  await sc.closeConnection(b.connectionId, { reason: "bye-from-rest" });
  const dB = await h.wait("disconnected", b.connectionId);
  console.log(`disconnected reason after a REST close: ${JSON.stringify(dB.request.reason)}`);
  // (3) reliable client closed through REST: the logical connection ends (it may come back
  // under a new id, which is a new connection with its own connect)
  const r = await srv.newClient(hub, { userId: "reliable-closed" });
  await h.wait("connected", r.connectionId);
  await sc.closeConnection(r.connectionId, { reason: "bye" });
  await h.wait("disconnected", r.connectionId);
  r.client.stop();
  // (4) raw client closes, (5) raw client drops its TCP connection
  const raw = await rawPlain(srv, h, hub, "raw-closer");
  await h.wait("connected", raw.connectionId);
  raw.close();
  await h.wait("disconnected", raw.connectionId);
  const drop = await rawPlain(srv, h, hub, "raw-dropper");
  await h.wait("connected", drop.connectionId);
  drop.terminate();
  await h.wait("disconnected", drop.connectionId);
  await settle(srv, h, hub);
  for (const id of [a.connectionId, b.connectionId, r.connectionId, raw.connectionId, drop.connectionId]) {
    assert.equal(h.events("connect", id).length, 1, `one connect for ${id}`);
    assert.equal(h.events("connected", id).length, 1, `one connected for ${id}`);
    assert.equal(h.events("disconnected", id).length, 1, `one disconnected for ${id}`);
    const posts = h.requests.filter((x) => x.method === "POST" && x.headers["ce-connectionid"] === id && x.headers["ce-type"] === "azure.webpubsub.sys.disconnected");
    assert.equal(posts.length, 1, `one disconnected POST for ${id}`);
  }
});

test("row 71: a connection that ends while its user event is pending gets one disconnected; the late answer is dropped", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  let release;
  const held = new Promise((r) => (release = r));
  h.script.handleUserEvent = async (req, res) => {
    await held;
    res.success("too late", "text");
  };
  const json = await srv.rawClient(hub, { userId: "gone-json" }, JSON_PROTOCOL);
  await json.sendJson({ type: "event", event: "pending", dataType: "text", data: "x", ackId: 1 });
  const raw = await rawPlain(srv, h, hub, "gone-raw");
  await raw.send("pending");
  await waitUntil(() => h.events("user").length >= 2, { what: "both events at the handler" });
  json.terminate();
  raw.terminate();
  await Promise.all([json.closed, raw.closed]);
  // (hubcast sends disconnected once the pending call is over: release it.)
  await waitUntil(() => srv.serviceClient(hub).connectionExists(json.connectionId).then((x) => !x), { what: "the JSON connection to be gone" }).catch(() => {});
  release();
  await h.wait("disconnected", json.connectionId);
  await h.wait("disconnected", raw.connectionId);
  await settle(srv, h, hub);
  for (const id of [json.connectionId, raw.connectionId]) {
    assert.equal(h.events("disconnected", id).length, 1, `one disconnected for ${id}`);
  }
  await assertHealthy(srv, "after late answers for closed connections");
});

test("row 71: a graceful shutdown (SIGTERM) sends disconnected for the connections it ends", T, async () => {
  const upx = await startUpstream({ name: "upstream-shutdown" });
  const hub = uniqueHub("term");
  const h = upx.handler(hub);
  const s = await startServer({ args: ["--event-handler", `${hub}=${upx.template}`] });
  try {
    const json = await jsonClient(s, hub, { userId: "term-json" });
    const raw = await rawPlain(s, h, hub, "term-raw");
    const reliable = await s.newClient(hub, { userId: "term-reliable" });
    for (const id of [json.connectionId, raw.connectionId, reliable.connectionId]) await h.wait("connected", id);
    process.kill(s.pid, "SIGTERM");
    const exit = await withDeadline(s.exited(), 20000, "hubcast to exit after SIGTERM");
    assert.equal(exit.code, 0);
    await sleep(200); // the express app may still be reading the last bodies
    const seen = h.events("disconnected").map((e) => e.request.context.userId);
    console.log(`disconnected events seen on SIGTERM: ${JSON.stringify(seen)} (a reliable session may legitimately outlive the process)`);
    assert.equal(h.events("disconnected", json.connectionId).length, 1, "the JSON connection ended: one disconnected");
    assert.equal(h.events("disconnected", raw.connectionId).length, 1, "the raw connection ended: one disconnected");
  } finally {
    await s.stop();
    await upx.close();
  }
});

test("row 70: connected is sent after the connected system message and does not block the connection", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  // The handler's onConnected answers at once (the SDK answers non-blocking events before
  // running the callback); hold the HTTP answer back instead to prove the connection does not wait.
  let release;
  const held = new Promise((r) => (release = r));
  h.script.intercept = (req, res) => {
    if (req.headers["ce-type"] !== "azure.webpubsub.sys.connected") return false;
    held.then(() => res.status(200).end());
    return true;
  };
  try {
    const sock = await srv.rawClient(hub, { userId: "early" }, JSON_PROTOCOL);
    await waitUntil(() => h.requests.some((r) => r.headers["ce-type"] === "azure.webpubsub.sys.connected" && r.headers["ce-connectionid"] === sock.connectionId), { what: "the connected POST" });
    assert.equal(sock.frames[0].json.type, "system", "the connected system message came first");
    // The connection works while `connected` is still unanswered.
    await sock.sendJson({ type: "event", event: "during", dataType: "text", data: "x", ackId: 1 });
    const ack = await sock.waitAck(1);
    assert.equal(ack.success, true);
    const pong = await sock.roundTrip();
    assert.equal(pong.type, "pong");
  } finally {
    release();
  }
});

test("row 27/71: a reliable connection that recovers gets no new connect/connected and no disconnected for the drop", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const sock = await srv.rawClient(hub, { userId: "recoverer" }, RELIABLE_PROTOCOL);
  const id = sock.connectionId;
  await h.wait("connected", id);
  sock.terminate();
  const url = `${sock.url}&awps_connection_id=${encodeURIComponent(id)}&awps_reconnection_token=${encodeURIComponent(sock.reconnectionToken)}`;
  const again = await srv.raw(url, { protocols: RELIABLE_PROTOCOL });
  await again.sendJson({ type: "event", event: "after-recovery", dataType: "text", data: "y", ackId: 1 });
  const ack = await again.waitAck(1);
  assert.equal(ack.success, true);
  assert.equal(again.isOpen, true, "recovered");
  await h.wait("user", id); // the event of the recovered connection has the same connectionId
  assert.equal(h.events("connect", id).length, 1);
  assert.equal(h.events("connected", id).length, 1);
  assert.equal(h.events("disconnected", id).length, 0, "no disconnected for a transport drop that was recovered");
  again.close();
  await h.wait("disconnected", id);
});

// ---------------------------------------------------------------------------------------------
// user events from JSON clients (rows 19-21)

test("row 19/20: sendEvent text/json/binary: the answer arrives as a server message before the ack", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleUserEvent = (req, res) => {
    switch (req.context.eventName) {
      case "text":
        return res.success(`text:${req.data}`, "text");
      case "json":
        return res.success(JSON.stringify({ echo: req.data }), "json");
      case "binary":
        return res.success(Buffer.concat([Buffer.from([0xff]), req.data]), "binary");
      default:
        return res.success();
    }
  };
  const c = await jsonClient(srv, hub, { userId: "evt" });
  const id = c.connectionId;
  const serverCount = () => c.rec.all("server").length;

  let n = serverCount();
  const r1 = await c.client.sendEvent("text", "hello", "text");
  assert.equal(r1.isDuplicated, false);
  assert.equal(serverCount(), n + 1, "the server message arrived before sendEvent resolved");
  let m = c.rec.all("server").at(-1);
  assert.equal(m.dataType, "text");
  assert.equal(m.data, "text:hello");
  const u1 = await h.wait("user", id, 15000, (e) => e.request.context.eventName === "text");
  assert.equal(u1.request.dataType, "text");
  assert.match(u1.http.headers["content-type"], /^text\/plain/);

  n = serverCount();
  await c.client.sendEvent("json", { a: [1, 2], b: "c" }, "json");
  assert.equal(serverCount(), n + 1);
  m = c.rec.all("server").at(-1);
  assert.equal(m.dataType, "json");
  assert.deepEqual(m.data, { echo: { a: [1, 2], b: "c" } });
  const u2 = await h.wait("user", id, 15000, (e) => e.request.context.eventName === "json");
  assert.match(u2.http.headers["content-type"], /^application\/json/);

  n = serverCount();
  await c.client.sendEvent("binary", Uint8Array.from([1, 2, 3]).buffer, "binary");
  assert.equal(serverCount(), n + 1);
  m = c.rec.all("server").at(-1);
  assert.equal(m.dataType, "binary");
  assert.deepEqual([...toBuf(m.data)], [0xff, 1, 2, 3]);
  const u3 = await h.wait("user", id, 15000, (e) => e.request.context.eventName === "binary");
  assert.match(u3.http.headers["content-type"], /^application\/octet-stream/);
  assert.deepEqual([...u3.request.data], [1, 2, 3]);

  // res.success() with no data: 200, empty octet-stream body -> ack only, no (empty) message.
  n = serverCount();
  await c.client.sendEvent("nothing", "x", "text");
  const u4 = await h.wait("user", id, 15000, (e) => e.request.context.eventName === "nothing");
  assert.equal(u4.http.status, 200);
  await srv.serviceClient(hub).sendToConnection(id, { sentinel: 1 });
  await c.rec.wait("server", (x) => x.data && x.data.sentinel === 1);
  assert.deepEqual(c.rec.all("server").slice(n).map((x) => x.data), [{ sentinel: 1 }], "no message for an empty answer");
});

test("row 20: on the wire the server message precedes the ack; a reused ackId is Duplicate without a second call", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleUserEvent = (req, res) =>
    req.dataType === "text" ? res.success(`re:${req.data}`, "text") : res.success(JSON.stringify({ re: req.data }), "json");
  const sock = await srv.rawClient(hub, { userId: "wire" }, JSON_PROTOCOL);
  await sock.sendJson({ type: "event", event: "ping1", dataType: "text", data: "a", ackId: 7 });
  await sock.waitAck(7);
  const kinds = sock.frames.slice(1).map((f) => f.json);
  assert.deepEqual(kinds, [
    { type: "message", from: "server", dataType: "text", data: "re:a" },
    { type: "ack", ackId: 7, success: true },
  ]);
  const before = h.events("user", sock.connectionId).length;
  await sock.sendJson({ type: "event", event: "ping1", dataType: "text", data: "b", ackId: 7 });
  const dup = await sock.waitJson((m) => m.type === "ack" && m.ackId === 7 && m.success === false);
  assert.equal(dup.error.name, "Duplicate");
  await sock.roundTrip();
  assert.equal(h.events("user", sock.connectionId).length, before, "the handler was not called again");
  assert.equal(sock.messages().length, 1, "no second server message");
  // JSON event default dataType is json; without ackId there is no ack at all.
  await sock.sendJson({ type: "event", event: "noack", data: { k: 1 } });
  const u = await h.wait("user", sock.connectionId, 15000, (e) => e.request.context.eventName === "noack");
  assert.deepEqual(u.request.data, { k: 1 });
  const back = await sock.waitJson((m) => m.type === "message" && m.dataType === "json");
  assert.deepEqual(back.data, { re: { k: 1 } });
  await sock.roundTrip();
  assert.equal(sock.jsons().filter((m) => m.type === "ack").length, 2);
});

test("row 20: an answer without Content-Type is binary; Content-Type parameters are tolerated", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.intercept = (req, res) => {
    if (!String(req.headers["ce-type"]).startsWith("azure.webpubsub.user.")) return false;
    const ev = req.headers["ce-eventname"];
    if (ev === "none") {
      res.writeHead(200); // no Content-Type at all
      res.end(Buffer.from([9, 8, 7]));
    } else if (ev === "params") {
      res.writeHead(200, { "Content-Type": "application/json;charset=UTF-8; foo=bar" });
      res.end('{"p":true}');
    } else if (ev === "upper") {
      res.writeHead(200, { "Content-Type": "Text/Plain; Charset=utf-8" });
      res.end("upper");
    } else return false;
    return true;
  };
  const c = await jsonClient(srv, hub, { userId: "ctype" });
  await c.client.sendEvent("none", "x", "text");
  let m = c.rec.all("server").at(-1);
  assert.equal(m.dataType, "binary");
  assert.deepEqual([...toBuf(m.data)], [9, 8, 7]);
  await c.client.sendEvent("params", "x", "text");
  m = c.rec.all("server").at(-1);
  assert.equal(m.dataType, "json");
  assert.deepEqual(m.data, { p: true });
  await c.client.sendEvent("upper", "x", "text");
  m = c.rec.all("server").at(-1);
  assert.equal(m.dataType, "text", "media types are case-insensitive");
  assert.equal(m.data, "upper");
});

test("row 21: res.fail(500) -> sendEvent rejects with InternalServerError, the connection stays", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleUserEvent = (req, res) => (req.context.eventName === "bad" ? res.fail(500, "handler broke") : res.success("ok", "text"));
  const c = await jsonClient(srv, hub, { userId: "failer" });
  await expectAckError(c.client.sendEvent("bad", "x", "text"), "InternalServerError");
  const ok = await c.client.sendEvent("good", "y", "text");
  assert.equal(ok.isDuplicated, false);
  await c.rec.wait("server", (m) => m.data === "ok");
  assert.equal(await srv.serviceClient(hub).connectionExists(c.connectionId), true);
  // Also 4xx answers (express fail(400/401)).
  h.script.handleUserEvent = (req, res) => res.fail(400, "bad request");
  await expectAckError(c.client.sendEvent("bad", "z", "text"), "InternalServerError");
});

test("row 21/74: an event no handler takes gets an InternalServerError ack (JSON) / closes the raw client", T, async () => {
  const h = up.handler(HUB_NOMSG);
  const c = await jsonClient(srv, HUB_NOMSG, { userId: "nomatch" });
  await expectAckError(c.client.sendEvent("message", "x", "text"), "InternalServerError");
  await c.client.sendEvent("NotMessage", "y", "text");
  const seen = await h.wait("user", c.connectionId);
  assert.equal(seen.request.context.eventName, "NotMessage");
  const raw = await rawPlain(srv, h, HUB_NOMSG, "raw-nomatch");
  await raw.send("hello");
  const closed = await raw.waitClose(15000);
  console.log(`raw client with no handler for "message" closed with ${JSON.stringify(closed)}`);
  assert.deepEqual(h.events("user", raw.connectionId), []);
});

// ---------------------------------------------------------------------------------------------
// raw clients (row 30)

test("row 30: raw client text and binary frames become `message` events; answers come back as the same kind of frame", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleUserEvent = (req, res) => {
    if (req.dataType === "text") {
      if (req.data === "json please") return res.success(JSON.stringify({ j: 1 }), "json");
      if (req.data === "silence") return res.success();
      return res.success(`TEXT:${req.data}`, "text");
    }
    return res.success(Buffer.concat([Buffer.from("BIN:"), req.data]), "binary");
  };
  const sock = await rawPlain(srv, h, hub, "rawer");
  await sock.send("hello");
  let f = await sock.waitFrame();
  assert.equal(f.isBinary, false);
  assert.equal(f.text, "TEXT:hello");
  const ev = await h.wait("user", sock.connectionId);
  assert.equal(ev.request.context.eventName, "message");
  assert.equal(ev.http.headers["ce-type"], "azure.webpubsub.user.message");
  assert.match(ev.http.headers["content-type"], /^text\/plain/);

  await sock.send(Buffer.from([0, 1, 2, 250]), { binary: true });
  f = await sock.waitFrame((x) => x.isBinary);
  assert.deepEqual([...f.data], [...Buffer.from("BIN:"), 0, 1, 2, 250]);
  const evb = await h.wait("user", sock.connectionId, 15000, (e) => e.request.dataType === "binary");
  assert.match(evb.http.headers["content-type"], /^application\/octet-stream/);

  await sock.send("json please");
  f = await sock.waitFrame((x) => x.text === '{"j":1}');
  assert.equal(f.isBinary, false, "an application/json answer is a text frame");

  // An empty answer sends nothing: a REST message sent after it is the next frame.
  const before = sock.frames.length;
  await sock.send("silence");
  await h.wait("user", sock.connectionId, 15000, (e) => e.request.data === "silence");
  await srv.serviceClient(hub).sendToConnection(sock.connectionId, "after-silence", { contentType: "text/plain" });
  await sock.waitFrame((x) => x.text === "after-silence");
  assert.deepEqual(sock.frames.slice(before).map((x) => x.text), ["after-silence"]);
  assert.equal(sock.isOpen, true);
});

test("row 30: raw client frames are handled one at a time per connection, answers in order", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  let inFlight = 0;
  let maxInFlight = 0;
  h.script.handleUserEvent = async (req, res) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(req.data === "1" ? 400 : 20);
    inFlight -= 1;
    res.success(`r${req.data}`, "text");
  };
  const sock = await rawPlain(srv, h, hub, "serial");
  for (const x of ["1", "2", "3", "4"]) await sock.send(x);
  await waitUntil(() => sock.frames.length >= 4, { what: "four answers" });
  assert.deepEqual(sock.frames.map((f) => f.text), ["r1", "r2", "r3", "r4"]);
  assert.equal(maxInFlight, 1, "never two upstream calls at once for one connection");
  assert.deepEqual(h.events("user", sock.connectionId).map((e) => e.request.data), ["1", "2", "3", "4"]);
});

test("row 30: a failing handler answer closes the raw client (1011); the others stay", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleUserEvent = (req, res) => (req.data === "boom" ? res.fail(500, "no") : res.success(`ok:${req.data}`, "text"));
  const victim = await rawPlain(srv, h, hub, "victim");
  const bystander = await rawPlain(srv, h, hub, "bystander");
  await victim.send("boom");
  const closed = await victim.waitClose(15000);
  assert.equal(closed.code, 1011, `close code ${JSON.stringify(closed)}`);
  await h.wait("disconnected", victim.connectionId);
  await bystander.send("still");
  const f = await bystander.waitFrame();
  assert.equal(f.text, "ok:still");
  // A 4xx answer closes too.
  h.script.handleUserEvent = (req, res) => res.fail(401, "unauthorized");
  await bystander.send("now fail");
  const closed2 = await bystander.waitClose(15000);
  assert.equal(closed2.code, 1011);
});

// ---------------------------------------------------------------------------------------------
// connection state (row 72)

test("row 72: state set in handleConnect and in a user event is carried to connected, later events and disconnected", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleConnect = (req, res) => {
    res.setState("fromConnect", { n: 1 });
    res.success();
  };
  h.script.handleUserEvent = (req, res) => {
    if (req.context.eventName === "first") res.setState("fromEvent", "e1");
    res.success();
  };
  const c = await jsonClient(srv, hub, { userId: "stateful" });
  const id = c.connectionId;
  const connect = await h.wait("connect", id);
  const setByConnect = connect.http.responseHeaders["ce-connectionstate"];
  assert.ok(setByConnect, "handleConnect answered with ce-connectionState");
  assert.deepEqual(connect.states, {}, "no state before it was set");
  const connected = await h.wait("connected", id);
  assert.deepEqual(connected.states, { fromConnect: { n: 1 } });
  assert.equal(connected.http.headers["ce-connectionstate"], setByConnect, "echoed verbatim");
  await c.client.sendEvent("first", "1", "text");
  const first = await h.wait("user", id, 15000, (e) => e.request.context.eventName === "first");
  assert.deepEqual(first.states, { fromConnect: { n: 1 } });
  const setByEvent = first.http.responseHeaders["ce-connectionstate"];
  await c.client.sendEvent("second", "2", "text");
  const second = await h.wait("user", id, 15000, (e) => e.request.context.eventName === "second");
  assert.deepEqual(second.states, { fromConnect: { n: 1 }, fromEvent: "e1" });
  assert.equal(second.http.headers["ce-connectionstate"], setByEvent);
  await c.client.sendEvent("third", "3", "text");
  const third = await h.wait("user", id, 15000, (e) => e.request.context.eventName === "third");
  assert.deepEqual(third.states, { fromConnect: { n: 1 }, fromEvent: "e1" }, "an answer without the header leaves the state as it was");
  c.client.stop();
  const disc = await h.wait("disconnected", id);
  assert.deepEqual(disc.states, { fromConnect: { n: 1 }, fromEvent: "e1" });
  // Another connection of the same hub has its own (empty) state.
  h.script.handleConnect = null;
  const d = await jsonClient(srv, hub, { userId: "stateless" });
  const dc = await h.wait("connected", d.connectionId);
  assert.deepEqual(dc.states, {});
  assert.equal(dc.http.headers["ce-connectionstate"], undefined);
});

test("row 72: a raw client's `message` answer can set state too", T, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  h.script.handleUserEvent = (req, res) => {
    const count = (req.context.states.count ?? 0) + 1;
    res.setState("count", count);
    res.success(String(count), "text");
  };
  const sock = await rawPlain(srv, h, hub, "counter");
  for (let i = 0; i < 3; i++) await sock.send("tick");
  await waitUntil(() => sock.frames.length >= 3, { what: "three answers" });
  assert.deepEqual(sock.frames.map((f) => f.text), ["1", "2", "3"]);
  sock.close();
  const disc = await h.wait("disconnected", sock.connectionId);
  assert.deepEqual(disc.states, { count: 3 });
});

// ---------------------------------------------------------------------------------------------
// routing (rows 73-74)

test("row 73/74: user=/system= patterns route events; the first matching handler wins; event names case-insensitive", T, async () => {
  const a = upB.handler(HUB_ROUTE); // first: user=Echo,Other;system=connected
  const b = up.handler(HUB_ROUTE); // second: everything
  a.script.handleUserEvent = (req, res) => res.success(`A:${req.context.eventName}`, "text");
  b.script.handleUserEvent = (req, res) => res.success(`B:${req.context.eventName}`, "text");
  const c = await jsonClient(srv, HUB_ROUTE, { userId: "router" });
  const id = c.connectionId;
  const got = [];
  for (const ev of ["echo", "ECHO", "eChO", "other", "misc", "echoes"]) {
    await c.client.sendEvent(ev, "x", "text");
    got.push(c.rec.all("server").at(-1).data);
  }
  assert.deepEqual(got, ["A:echo", "A:ECHO", "A:eChO", "A:other", "B:misc", "B:echoes"]);
  assert.equal(b.events("connect", id).length, 1, "connect goes to the second handler (the first has system=connected)");
  assert.equal(a.events("connect", id).length, 0);
  await a.wait("connected", id);
  c.client.stop();
  await b.wait("disconnected", id);
  await settle(srv, a, HUB_ROUTE, b);
  assert.equal(b.events("connected", id).length, 0, "connected went only to the first handler");
  assert.equal(a.events("disconnected", id).length, 0, "disconnected went only to the second handler");
  assert.deepEqual(a.events("user", id).map((e) => e.request.context.eventName), ["echo", "ECHO", "eChO", "other"]);
  assert.deepEqual(b.events("user", id).map((e) => e.request.context.eventName), ["misc", "echoes"]);
});

// ---------------------------------------------------------------------------------------------
// retries and timeouts (row 75)

test("row 75: a handler answering 503 once for `connected` is retried", T, async () => {
  const h = up.handler(HUB_RETRY);
  let connectedPosts = 0;
  h.script.intercept = (req, res) => {
    if (req.headers["ce-type"] !== "azure.webpubsub.sys.connected") return false;
    connectedPosts += 1;
    if (connectedPosts === 1) {
      res.status(503).end("try again");
      return true;
    }
    return false;
  };
  const c = await jsonClient(srv, HUB_RETRY, { userId: "retried" });
  const t0 = Date.now();
  const ev = await h.wait("connected", c.connectionId, 30000);
  console.log(`connected retried after ${ev.at - t0} ms`);
  c.client.stop();
  await h.wait("disconnected", c.connectionId, 30000);
  await settle(srv, h, HUB_RETRY);
  const posts = h.requests.filter((r) => r.headers["ce-type"] === "azure.webpubsub.sys.connected" && r.headers["ce-connectionid"] === c.connectionId);
  assert.deepEqual(posts.map((r) => r.status), [503, 200], "one failed attempt, one retry");
  assert.equal(h.events("connected", c.connectionId).length, 1);
});

test("row 75: --upstream-timeout-seconds bounds a blocking call: a slow connect handler gives 500, a slow user event an error ack", T, async () => {
  const upx = await startUpstream({ name: "upstream-slow" });
  const hub = uniqueHub("slow");
  const h = upx.handler(hub);
  const s = await startServer({ args: ["--event-handler", `${hub}=${upx.template}`, "--upstream-timeout-seconds", "1"] });
  try {
    h.script.handleConnect = async (req, res) => {
      if (req.claims.sub[0] === "slow") await sleep(4000);
      res.success();
    };
    h.script.handleUserEvent = async (req, res) => {
      if (req.context.eventName === "slow") await sleep(4000);
      res.success("fast", "text");
    };
    const t0 = Date.now();
    const res = await upgrade(await s.clientUrl(hub, { userId: "slow" }), { protocols: JSON_PROTOCOL, timeout: 40000 });
    const connectMs = Date.now() - t0;
    const connectAttempts = h.requests.filter((r) => r.headers["ce-type"] === "azure.webpubsub.sys.connect").map((r) => `+${r.at - t0} ms`);
    console.log(`slow connect refused after ${connectMs} ms with ${res.status}; attempts at the handler: ${connectAttempts.join(", ")}`);
    assert.equal(res.status, 500);
    assert.ok(connectMs < 9000, `bounded by the 1 s timeout (${connectMs} ms)`);
    // A user event that times out on a connection to the handler that was used before (connect
    // and connected of this client went over it).
    const c = await jsonClient(s, hub, { userId: "fast" });
    await h.wait("connected", c.connectionId);
    await c.client.sendEvent("quick", "y", "text");
    const t1 = Date.now();
    await expectAckError(c.client.sendEvent("slow", "x", "text"), "InternalServerError");
    const slowMs = Date.now() - t1;
    const attempts = h.requests.filter((r) => r.headers["ce-eventname"] === "slow");
    console.log(`slow user event failed after ${slowMs} ms; attempts at the handler: ${attempts.map((r) => `+${r.at - t1} ms (ce-id ${r.headers["ce-id"]})`).join(", ")}`);
    await c.client.sendEvent("quick", "y", "text");
    await c.rec.wait("server", (m) => m.data === "fast");
    assert.equal(attempts.length, 1, "a blocking call that timed out is not sent again (the handler's work may not be idempotent; the client waited n x the timeout)");
    assert.equal(connectAttempts.length, 1, "a connect that timed out is not sent again");
  } finally {
    await s.stop();
    await upx.close();
  }
});

// ---------------------------------------------------------------------------------------------
// express SDK defaults (row 76) and reload

test("row 76: the express SDK with default path and no callbacks works end to end", T, async () => {
  const h = up.handler(HUB_BARE, { bare: true });
  const c = await jsonClient(srv, HUB_BARE, { userId: "bare-json" });
  const n = c.rec.all("server").length;
  const r = await c.client.sendEvent("anything", { a: 1 }, "json");
  assert.equal(r.isDuplicated, false);
  const sock = await openPlain(srv, HUB_BARE, { userId: "bare-raw" });
  await sock.send("hi");
  await waitUntil(() => h.requests.some((x) => x.headers["ce-type"] === "azure.webpubsub.user.message" && x.status === 200), { what: "the message event answered" });
  await srv.serviceClient(HUB_BARE).sendToUser("bare-raw", "after", { contentType: "text/plain" });
  await sock.waitFrame((f) => f.text === "after");
  assert.deepEqual(sock.frames.map((f) => f.text), ["after"], "an empty answer sends the raw client nothing");
  assert.equal(c.rec.all("server").length, n, "nor the JSON client");
  c.client.stop();
  sock.close();
  await waitUntil(() => h.requests.filter((x) => x.headers["ce-type"] === "azure.webpubsub.sys.disconnected").length >= 2, { what: "two disconnected POSTs" });
  for (const x of h.requests.filter((q) => q.method === "POST")) assert.equal(x.status, 200, `${x.headers["ce-type"]} answered 200 by the SDK`);
});

test("row 73: SIGHUP reloads event handlers from --config: a new handler serves new connections, existing ones stay open", T, async () => {
  const upx = await startUpstream({ name: "upstream-reload" });
  const hubOld = uniqueHub("reload");
  const hubNew = uniqueHub("reload");
  const hOld = upx.handler(hubOld);
  const hNew = upx.handler(hubNew);
  hNew.script.handleConnect = (req, res) => res.success({ userId: "via-new-handler" });
  const cfgDir = mkdtempSync(join(tmpdir(), "hubcast-cfg-"));
  const cfg = join(cfgDir, "hubcast.conf");
  writeFileSync(cfg, `# event handlers\nevent-handler = ${hubOld}=${upx.template}\n`);
  const s = await startServer({ args: ["--config", cfg] });
  try {
    const oldConn = await jsonClient(s, hubOld, { userId: "old" });
    await hOld.wait("connected", oldConn.connectionId);
    const before = await jsonClient(s, hubNew, { userId: "before" });
    assert.equal((await before.rec.wait("connected")).userId, "before", "no handler yet");
    assert.deepEqual(hNew.requests, []);

    writeFileSync(cfg, `event-handler = ${hubOld}=${upx.template}\nevent-handler = ${hubNew}=${upx.template}\n`);
    process.kill(s.pid, "SIGHUP");
    // New connections pick the handler up once the reload is done.
    let probe;
    await waitUntil(
      async () => {
        probe = await jsonClient(s, hubNew, { userId: "probe" });
        const uid = (await probe.rec.wait("connected")).userId;
        if (uid !== "via-new-handler") probe.client.stop();
        return uid === "via-new-handler";
      },
      { timeout: 15000, interval: 200, what: "the reloaded handler to serve a new connection" },
    );
    await hNew.wait("connected", probe.connectionId);
    // Existing connections were not dropped and still work.
    const sc = s.serviceClient(hubNew);
    assert.equal(await sc.connectionExists(before.connectionId), true);
    assert.equal(await s.serviceClient(hubOld).connectionExists(oldConn.connectionId), true);
    assert.equal(before.rec.all("disconnected").length, 0);
    assert.equal(oldConn.rec.all("disconnected").length, 0);
    await sc.sendToConnection(before.connectionId, { still: "here" });
    await before.rec.wait("server", (m) => m.data && m.data.still === "here");
    const r = await oldConn.client.sendEvent("after-reload", "x", "text");
    assert.equal(r.isDuplicated, false);
    await hOld.wait("user", oldConn.connectionId);
  } finally {
    await s.stop();
    await upx.close();
  }
});

test("row 75: an upstream that was down at first use is used once it is up (validation is retried)", T, async () => {
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, "127.0.0.1", r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const hub = uniqueHub("later");
  const s = await startServer({ args: ["--event-handler", `${hub}=http://127.0.0.1:${port}/api/webpubsub/hubs/{hub}/`] });
  let upx;
  try {
    const res = await upgrade(await s.clientUrl(hub, { userId: "early" }), { protocols: JSON_PROTOCOL, timeout: 40000 });
    assert.equal(res.status, 500, "down: refused");
    upx = await startUpstream({ name: "upstream-late", port });
    const h = upx.handler(hub);
    h.script.handleConnect = (req, res) => res.success({ userId: "late-ok" });
    const t0 = Date.now();
    let c;
    await waitUntil(
      async () => {
        const r = await upgrade(await s.clientUrl(hub, { userId: "late" }), { protocols: JSON_PROTOCOL, timeout: 40000 });
        if (r.socket) c = r.socket;
        return Boolean(r.socket);
      },
      { timeout: 30000, interval: 500, what: "a connect through the upstream that came up" },
    );
    console.log(`upstream used ${Date.now() - t0} ms after it came up`);
    const connected = await c.waitJson((m) => m.type === "system" && m.event === "connected");
    assert.equal(connected.userId, "late-ok");
    c.terminate();
  } finally {
    await s.stop();
    if (upx) await upx.close();
  }
});

test("row 75: blocking events (connect, user events) ride kept-alive connections to the handler and run once when it drops idle ones", T, async () => {
  // A connection per blocking call cost a TCP handshake and a TIME_WAIT socket each (issue #10).
  // They share kept-alive connections now. An app server closes idle ones (node: after 5 s); a
  // blocking call must then neither fail nor run twice: a request goes again on a fresh
  // connection only when not one byte of it was written (a pooled connection found closed).
  const hub = poolHub();
  const h = up.handler(hub);
  const served = new WeakMap(); // socket -> requests it carried before
  const onReused = [];
  const arrivals = new Map(); // "<ce-type> <connection id>" of blocking events -> count
  h.script.intercept = (req) => {
    const before = served.get(req.socket) ?? 0;
    const type = String(req.headers["ce-type"] ?? req.method);
    if (type === "azure.webpubsub.sys.connect" || type.startsWith("azure.webpubsub.user.")) {
      if (before > 0) onReused.push(type);
      const key = `${type} ${req.headers["ce-connectionid"]}`;
      arrivals.set(key, (arrivals.get(key) ?? 0) + 1);
    }
    served.set(req.socket, before + 1);
    return false;
  };
  for (let i = 0; i < 6; i++) {
    const c = await jsonClient(srv, hub, { userId: `reuse${i}` });
    await h.wait("connected", c.connectionId);
    await c.client.sendEvent("blocking", "x", "text");
    // Every other round the handler drops its idle connections, as its keepAliveTimeout would.
    if (i % 2 === 1) up.server.closeIdleConnections();
    c.client.stop();
    await h.wait("disconnected", c.connectionId);
  }
  assert.ok(onReused.length > 0, "no blocking event rode a kept-alive connection");
  assert.equal(arrivals.size, 12, `6 connects and 6 user events: ${[...arrivals.keys()].join("; ")}`);
  for (const [key, n] of arrivals) assert.equal(n, 1, `${key} arrived ${n} times`);
});

test("row 75: slow connect calls do not hold up REST calls or other hubs' handshakes", { timeout: 90000 }, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  let release;
  const held = new Promise((r) => (release = r));
  h.script.handleConnect = async (req, res) => {
    await held;
    res.success();
  };
  const N = 24; // more than --http-threads' default 16
  const pending = [];
  try {
    for (let i = 0; i < N; i++) {
      const ws = new WebSocket(await srv.clientUrl(hub, { userId: `wait${i}` }), JSON_PROTOCOL);
      ws.userId = `wait${i}`;
      ws.on("error", (e) => (ws.failure = e.message));
      ws.on("unexpected-response", (req, res) => {
        ws.failure = `HTTP ${res.statusCode}`;
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        res.on("end", () => {
          ws.failure = `HTTP ${res.statusCode} ${body}`;
          res.socket?.destroy();
        });
      });
      ws.on("close", (code) => (ws.closeCode = code));
      ws.sentAt = Date.now();
      pending.push(ws);
    }
    await waitUntil(() => h.events("connect").length >= 1, { what: "the first connect call at the handler" });
    await waitUntil(() => h.events("connect").length >= N, { timeout: 15000 }).catch(() => {});
    const arrived = h.events("connect").length;
    console.log(`${arrived} of ${N} connect calls reached the handler while it held them`);
    const seen = new Set(h.events("connect").map((e) => e.request.claims.sub[0]));
    const missing = pending
      .filter((ws) => !seen.has(ws.userId))
      .map((ws) => `${ws.userId} (readyState ${ws.readyState}, ${ws.failure ?? "no error"}, close ${ws.closeCode ?? "-"}, opened ${ws.sentAt - pending[0].sentAt} ms after the first)`);
    const posts = h.requests.filter((r) => r.headers["ce-type"] === "azure.webpubsub.sys.connect").length;
    if (missing.length) {
      console.log(`not at the handler: ${missing.join("; ")}; connect POSTs at the express app: ${posts}; requests refused by node's HTTP parser: ${JSON.stringify(up.clientErrors.slice(-5))}`);
      console.log(`hubcast log (last 40 lines):\n${srv.stderr().concat(srv.stdout()).split("\n").slice(-40).join("\n")}`);
    }
    const t0 = Date.now();
    const within = async (what, promise) => {
      try {
        return await withDeadline(promise, 5000, what);
      } catch (e) {
        throw new Error(`${e.message}; ${N} handshakes were waiting for a held connect handler, ${arrived} of them had reached it (does a pending connect hold an HTTP worker?)`);
      }
    };
    const health = await within("HEAD /api/health", srv.rest("HEAD", "/api/health", { auth: false }));
    assert.equal(health.status, 200);
    await within("a REST sendToAll", srv.serviceClient(hub).sendToAll({ meanwhile: true }));
    const other = await within("a handshake on a hub without a handler", jsonClient(srv, uniqueHub("free"), { userId: "free" }));
    console.log(`with ${N} connect calls pending: REST + another handshake took ${Date.now() - t0} ms`);
    assert.equal(arrived, N, `every pending handshake reached the handler; missing: ${missing.join("; ")}; connect POSTs at the express app: ${posts}`);
    other.client.stop();
  } finally {
    release();
    for (const ws of pending) ws.terminate();
  }
});

test("row 19/75: many slow user-event calls do not hold up a fast one of another connection", { timeout: 90000 }, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  let release;
  const held = new Promise((r) => (release = r));
  const safety = setTimeout(() => release("timeout"), 8000);
  h.script.handleUserEvent = async (req, res) => {
    if (req.context.eventName === "slow") {
      const why = await held;
      return res.success(why === "timeout" ? "released by timeout" : "released", "text");
    }
    return res.success("fast", "text");
  };
  const N = 12;
  const slowOnes = [];
  for (let i = 0; i < N; i++) slowOnes.push(await jsonClient(srv, hub, { userId: `s${i}` }));
  const fast = await jsonClient(srv, hub, { userId: "fast" });
  const calls = slowOnes.map((c) => c.client.sendEvent("slow", "z", "text"));
  await waitUntil(() => h.events("user").filter((e) => e.request.context.eventName === "slow").length >= N, { what: `${N} slow calls at the handler` });
  await fast.client.sendEvent("quick", "q", "text");
  const m = fast.rec.all("server").at(-1);
  assert.equal(m.data, "fast");
  clearTimeout(safety);
  release("fast done");
  await Promise.all(calls);
  for (const c of slowOnes) assert.equal(c.rec.all("server").at(-1).data, "released", "the slow calls were still pending when the fast one was answered");
});

// ---------------------------------------------------------------------------------------------
// load-shaped checks

test("an upstream that answers after 2 s delays only its own connection", { timeout: 120000 }, async () => {
  const hub = poolHub();
  const h = up.handler(hub);
  const group = uniqueName("busy");
  h.script.handleUserEvent = async (req, res) => {
    if (req.context.eventName === "slow") await sleep(2000);
    res.success("slow done", "text");
  };
  const slow = await jsonClient(srv, hub, { userId: "slowpoke" });
  const members = [];
  for (let i = 0; i < 20; i++) {
    members.push(await jsonClient(srv, hub, { userId: `m${i}`, groups: [group], roles: [`${SEND}.${group}`] }));
  }
  const ROUNDS = 10;
  const latencies = [];
  for (const m of members) {
    m.client.on("group-message", (e) => {
      if (e.message.data && typeof e.message.data.t === "number") latencies.push(Date.now() - e.message.data.t);
    });
  }
  const t0 = Date.now();
  const slowCall = slow.client.sendEvent("slow", "zzz", "text");
  await h.wait("user", slow.connectionId, 15000, (e) => e.request.context.eventName === "slow");
  let sentDuringSlow = 0;
  let slowDone = false;
  slowCall.then(() => (slowDone = true), () => (slowDone = true));
  for (let r = 0; r < ROUNDS; r++) {
    await Promise.all(
      members.map(async (m, i) => {
        await m.client.sendToGroup(group, { from: i, r, t: Date.now() }, "json");
        if (!slowDone) sentDuringSlow += 1;
      }),
    );
    await sleep(100);
  }
  await slowCall;
  const slowMs = Date.now() - t0;
  const expected = ROUNDS * members.length; // per receiver (senders get their own messages too)
  await waitUntil(() => members.every((m) => m.rec.all("group").filter((g) => g.group === group).length >= expected), {
    timeout: 20000,
    what: `${expected} group messages on each of the ${members.length} members`,
  });
  for (const m of members) {
    const got = m.rec.all("group").filter((g) => g.group === group).map((g) => `${g.data.from}/${g.data.r}`);
    assert.equal(new Set(got).size, expected, `every message arrived exactly once at ${m.userId}`);
  }
  await slow.rec.wait("server", (m) => m.data === "slow done");
  latencies.sort((x, y) => x - y);
  console.log(
    `slow upstream call: ${slowMs} ms; ${latencies.length} group deliveries (${sentDuringSlow} of ${ROUNDS * members.length} sends done while the slow call was pending): ` +
      `p50 ${pct(latencies, 50)} ms, p99 ${pct(latencies, 99)} ms, max ${latencies.at(-1)} ms`,
  );
  assert.equal(latencies.length, expected * members.length);
});

test("an upstream that is down makes connect fail with 500 and leaves no half-open connection", { timeout: 120000 }, async () => {
  // A port that was just free: bind, note it, close it.
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, "127.0.0.1", r));
  const deadPort = probe.address().port;
  await new Promise((r) => probe.close(r));
  const hub = uniqueHub("down");
  const s = await startServer({ args: ["--event-handler", `${hub}=http://127.0.0.1:${deadPort}/api/webpubsub/hubs/{hub}/`] });
  try {
    const user = uniqueName("ghost");
    const group = uniqueName("ghosts");
    const t0 = Date.now();
    const res = await upgrade(await s.clientUrl(hub, { userId: user, groups: [group] }), { protocols: JSON_PROTOCOL, timeout: 60000 });
    console.log(`connect with a dead upstream refused after ${Date.now() - t0} ms with ${res.status}`);
    assert.equal(res.status, 500);
    const raw = await upgrade(await s.clientUrl(hub, { userId: user, groups: [group] }), { timeout: 60000 });
    assert.equal(raw.status, 500, "raw clients too");
    await assert.rejects(jsonClient(s, hub, { userId: user, groups: [group] }), /500/);
    const sc = s.serviceClient(hub);
    assert.equal(await sc.userExists(user), false, "no connection of the user is left");
    assert.equal(await sc.groupExists(group), false, "the token's group was not joined");
    const members = [];
    for await (const m of await sc.group(group).listConnections()) members.push(m);
    assert.deepEqual(members, []);
    const groups = await s.rest("GET", `/api/hubs/${hub}/groups`);
    assert.equal(groups.status, 200);
    assert.deepEqual(groups.json.value, [], "the hub lists no group");
    const userGroups = await s.rest("GET", `/api/hubs/${hub}/users/${user}/groups`);
    assert.deepEqual(userGroups.json.value, []);
    // A broadcast finds nobody and the server is healthy.
    await sc.sendToAll({ nobody: true });
    await assertHealthy(s, "after connects to a dead upstream");
  } finally {
    await s.stop();
  }
});
