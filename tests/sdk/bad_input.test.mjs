// Bad input: every case checks the documented answer and that the server still serves a
// healthy client afterwards.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { assertHealthy } from "./lib/checks.mjs";
import { clientToken, signJwt } from "./lib/jwt.mjs";
import { tryUpgrade } from "./lib/raw.mjs";
import { TcpWsClient, encodeFrame, tcpHandshake } from "./lib/tcp.mjs";
import { API_VERSION, JSON_PROTOCOL, newAccessKey, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { sdkStatus, sleep, waitUntil, withDeadline } from "./lib/wait.mjs";

const T = { timeout: 30000 };
const MiB = 1024 * 1024;
let srv;

before(async () => {
  srv = await startServer();
});
afterEach(async () => srv.closeClients());
after(async () => srv && srv.stop());

function assertErrorBody(r, status) {
  assert.equal(r.status, status, `${r.url}: ${r.text}`);
  assert.ok(r.json && typeof r.json === "object", `error body is JSON: ${JSON.stringify(r.text)}`);
  const detail = r.json.error && typeof r.json.error === "object" ? r.json.error : r.json;
  assert.equal(typeof detail.code, "string", `error body has a code: ${r.text}`);
  assert.equal(typeof detail.message, "string", `error body has a message: ${r.text}`);
  assert.ok(r.headers.get("x-ms-error-code"), "x-ms-error-code header is set");
}

const now = () => Math.floor(Date.now() / 1000);

test("bad input: REST with a missing, expired, wrong-key or wrong-audience token -> 401", T, async () => {
  const hub = uniqueHub();
  const path = `/api/hubs/${hub}/:send`;
  const url = `${srv.endpoint}${path}?api-version=${API_VERSION}`;
  const cases = {
    missing: false,
    // Expired well past the 5-minute clock skew the server tolerates (as the emulator does).
    expired: `Bearer ${signJwt({ aud: url, iat: now() - 7200, exp: now() - 3600 }, srv.key)}`,
    "wrong key": `Bearer ${signJwt({ aud: url, iat: now(), exp: now() + 600 }, newAccessKey())}`,
    "wrong audience": `Bearer ${signJwt({ aud: `${srv.endpoint}/api/hubs/${hub}/users/u/:send`, iat: now(), exp: now() + 600 }, srv.key)}`,
    "alg none": `Bearer ${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(JSON.stringify({ aud: url, exp: now() + 600 })).toString("base64url")}.`,
  };
  for (const [what, auth] of Object.entries(cases)) {
    const r = await srv.rest("POST", path, { body: '{"a":1}', contentType: "application/json", auth });
    assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
    assertErrorBody(r, 401);
  }
  const wrongKeyCs = `Endpoint=${srv.endpoint};AccessKey=${newAccessKey()};Version=1.0;`;
  const { status, error } = await sdkStatus((o) => srv.serviceClient(hub, { connectionString: wrongKeyCs }).sendToAll({ a: 1 }, o));
  assert.equal(status, 401, `SDK with a wrong key: ${error && error.message}`);
  await assertHealthy(srv);
});

test("bad input: client handshake with a missing, expired, wrong-key or wrong-audience token -> 401", T, async () => {
  const hub = uniqueHub();
  const base = `ws://127.0.0.1:${srv.port}/client/hubs/${hub}`;
  const cases = {
    missing: base,
    expired: `${base}?access_token=${clientToken(srv.endpoint, hub, srv.key, { userId: "u", exp: now() - 3600 })}`,
    "wrong key": `${base}?access_token=${clientToken(srv.endpoint, hub, newAccessKey(), { userId: "u" })}`,
    "wrong audience": `${base}?access_token=${clientToken(srv.endpoint, hub, srv.key, { userId: "u", aud: `${srv.endpoint}/client/hubs/other${hub}` })}`,
  };
  for (const [what, url] of Object.entries(cases)) {
    for (const protocols of [JSON_PROTOCOL, undefined]) {
      const r = await tryUpgrade(url, { protocols });
      if (r.socket) r.socket.terminate();
      assert.equal(r.status, 401, `${what} (${protocols ?? "raw"}): ${r.socket ? "upgraded" : r.status}`);
    }
  }
  // The SDK client's start() fails too.
  const sc = srv.serviceClient(hub, { connectionString: `Endpoint=${srv.endpoint};AccessKey=${newAccessKey()};Version=1.0;` });
  const { WebPubSubClient } = await import("./lib/sdk.mjs");
  const client = new WebPubSubClient({ getClientAccessUrl: async () => (await sc.getClientAccessToken({ userId: "x" })).url });
  await assert.rejects(client.start());
  client.stop();
  await assertHealthy(srv);
});

test("bad input: an invalid hub name is 400 on REST", T, async () => {
  const { status } = await sdkStatus((o) => srv.serviceClient("1bad-hub").sendToAll({ a: 1 }, o));
  assert.equal(status, 400);
  const r = await srv.rest("POST", "/api/hubs/1bad-hub/:send", { body: "x", contentType: "text/plain" });
  assertErrorBody(r, 400);
  const r2 = await srv.rest("HEAD", `/api/hubs/${"h".repeat(129)}/users/u`);
  assert.equal(r2.status, 400, "a 129-character hub name");
  await assertHealthy(srv);
});

test("bad input: a whitespace-only group name is 400 on REST", T, async () => {
  const hub = uniqueHub();
  const r = await srv.rest("POST", `/api/hubs/${hub}/groups/%20%20%20/:send`, { body: "x", contentType: "text/plain" });
  assertErrorBody(r, 400);
  const r2 = await srv.rest("HEAD", `/api/hubs/${hub}/groups/%20`);
  assert.equal(r2.status, 400, "groupExists on ' '");
  const r3 = await srv.rest("POST", `/api/hubs/${hub}/:addToGroups`, {
    body: JSON.stringify({ groups: ["  "], filter: "" }),
    contentType: "application/json",
  });
  assert.equal(r3.status, 400, `:addToGroups with a blank group: ${r3.text}`);
  const r4 = await srv.rest("POST", `/api/hubs/${hub}/groups/${"g".repeat(1025)}/:send`, { body: "x", contentType: "text/plain" });
  assert.equal(r4.status, 400, "a 1025-character group name");
  await assertHealthy(srv);
});

test("bad input: a text frame that is not JSON -> disconnected message, then close 1003", T, async () => {
  const sock = await srv.rawClient(uniqueHub(), { userId: "garbage" });
  await sock.send("this is {not json");
  const closed = await sock.waitClose();
  const disc = sock.jsons().find((m) => m.type === "system" && m.event === "disconnected");
  assert.ok(disc, `a disconnected system message came first; frames: ${sock.frames.map((f) => f.text).join(" | ")}`);
  assert.equal(typeof disc.message, "string");
  assert.equal(closed.code, 1003);
  await assertHealthy(srv);
});

test("bad input: an unknown type with an ackId is acked BadRequest and the connection stays", T, async () => {
  const sock = await srv.rawClient(uniqueHub(), { userId: "unknowntype" });
  await sock.sendJson({ type: "frobnicate", ackId: 42, data: 1 });
  const ack = await sock.waitAck(42);
  assert.equal(ack.success, false);
  assert.equal(ack.error && ack.error.name, "BadRequest", JSON.stringify(ack));
  await sock.roundTrip();
  assert.ok(sock.isOpen);
  await assertHealthy(srv);
});

test("bad input: joinGroup with a whitespace-only group is acked BadRequest", T, async () => {
  const sock = await srv.rawClient(uniqueHub(), { userId: "blank", roles: ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"] });
  await sock.sendJson({ type: "joinGroup", group: "   ", ackId: 1 });
  const ack = await sock.waitAck(1);
  assert.equal(ack.success, false);
  assert.equal(ack.error && ack.error.name, "BadRequest", JSON.stringify(ack));
  await sock.sendJson({ type: "sendToGroup", group: " ", dataType: "text", data: "x", ackId: 2 });
  const ack2 = await sock.waitAck(2);
  assert.equal(ack2.error && ack2.error.name, "BadRequest", JSON.stringify(ack2));
  await sock.roundTrip();
  await assertHealthy(srv);
});

test("bad input: a binary frame on a JSON subprotocol closes with 1003", T, async () => {
  const sock = await srv.rawClient(uniqueHub(), { userId: "binsender" });
  await sock.send(Buffer.from([1, 2, 3]), { binary: true });
  const closed = await sock.waitClose();
  assert.equal(closed.code, 1003);
  await assertHealthy(srv);
});

test("bad input: a frame over 1 MiB closes with 1009", T, async () => {
  const sock = await srv.rawClient(uniqueHub(), { userId: "huge" });
  sock.send(JSON.stringify({ type: "event", event: "e", dataType: "text", data: "q".repeat(MiB + 100) })).catch(() => {});
  const closed = await sock.waitClose(15000);
  assert.equal(closed.code, 1009);
  await assertHealthy(srv);
});

test("bad input: a REST body over 1 MiB is 413", T, async () => {
  const hub = uniqueHub();
  const big = Buffer.alloc(MiB + 1024, 0x61);
  const r = await srv.rest("POST", `/api/hubs/${hub}/:send`, { body: big, contentType: "application/octet-stream" });
  assert.equal(r.status, 413, r.text);
  const { status } = await sdkStatus((o) => srv.serviceClient(hub).sendToAll(new Uint8Array(big), o));
  assert.equal(status, 413, "through the SDK");
  const edge = await srv.rest("POST", `/api/hubs/${hub}/:send`, { body: Buffer.alloc(MiB, 0x62), contentType: "application/octet-stream" });
  assert.equal(edge.status, 202, `a body of exactly 1 MiB is accepted: ${edge.text}`);
  await assertHealthy(srv);
});

test("bad input: an invalid OData filter is 400", T, async () => {
  const hub = uniqueHub();
  const { status } = await sdkStatus((o) => srv.serviceClient(hub).sendToAll({ a: 1 }, { filter: "userId eq", ...o }));
  assert.equal(status, 400);
  const r = await srv.rest("POST", `/api/hubs/${hub}/:send`, { body: "{}", contentType: "application/json", query: { filter: "userId ~~ 'x'" } });
  assertErrorBody(r, 400);
  await assertHealthy(srv);
});

test("bad input: an unknown route is 404 and a wrong method is 405", T, async () => {
  const r = await srv.rest("GET", "/api/nothing");
  assert.equal(r.status, 404, r.text);
  const hub = uniqueHub();
  const m = await srv.rest("GET", `/api/hubs/${hub}/:send`);
  assert.equal(m.status, 405, m.text);
  await assertHealthy(srv);
});

test("bad input: a body that is not the documented JSON on :addToGroups is 400", T, async () => {
  const hub = uniqueHub();
  const r = await srv.rest("POST", `/api/hubs/${hub}/:addToGroups`, { body: "{not json", contentType: "application/json" });
  assert.equal(r.status, 400, r.text);
  const r2 = await srv.rest("POST", `/api/hubs/${hub}/:addToGroups`, { body: JSON.stringify({ groups: [] }), contentType: "application/json" });
  assert.equal(r2.status, 400, `empty groups: ${r2.text}`);
  await assertHealthy(srv);
});

test("bad input: malformed JSON-protocol messages with an ackId are acked BadRequest", T, async () => {
  const sock = await srv.rawClient(uniqueHub(), { userId: "malformed", roles: ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"] });
  const cases = [
    ["joinGroup without group", { type: "joinGroup", ackId: 1 }],
    ["text dataType with a number", { type: "sendToGroup", group: "g", dataType: "text", data: 123, ackId: 2 }],
    ["binary dataType with invalid base64", { type: "sendToGroup", group: "g", dataType: "binary", data: "!!not base64!!", ackId: 3 }],
    ["unknown dataType", { type: "sendToGroup", group: "g", dataType: "xml", data: "<a/>", ackId: 4 }],
    ["group too long", { type: "joinGroup", group: "g".repeat(1025), ackId: 5 }],
  ];
  for (const [what, msg] of cases) {
    await sock.sendJson(msg);
    const ack = await sock.waitAck(msg.ackId);
    assert.equal(ack.success, false, `${what}: ${JSON.stringify(ack)}`);
    assert.equal(ack.error && ack.error.name, "BadRequest", `${what}: ${JSON.stringify(ack)}`);
  }
  await sock.roundTrip();
  assert.ok(sock.isOpen);
  await assertHealthy(srv);
});

test("bad input: REST query values out of their documented range are 400", T, async () => {
  const hub = uniqueHub();
  const checks = [
    ["messageTtlSeconds=301", "POST", `/api/hubs/${hub}/:send`, { messageTtlSeconds: 301 }, "x", "text/plain"],
    ["messageTtlSeconds=-1", "POST", `/api/hubs/${hub}/:send`, { messageTtlSeconds: -1 }, "x", "text/plain"],
    ["maxpagesize=0", "GET", `/api/hubs/${hub}/groups/g/connections`, { maxpagesize: 0 }],
    ["maxpagesize=201", "GET", `/api/hubs/${hub}/groups/g/connections`, { maxpagesize: 201 }],
    ["garbage continuationToken", "GET", `/api/hubs/${hub}/groups/g/connections`, { continuationToken: "%%garbage%%" }],
    ["minutesToExpire=0", "POST", `/api/hubs/${hub}/:generateToken`, { minutesToExpire: 0 }],
    ["unknown permission", "PUT", `/api/hubs/${hub}/permissions/fly/connections/c1`, {}],
  ];
  for (const [what, method, path, query, body, contentType] of checks) {
    const r = await srv.rest(method, path, { query, body, contentType });
    assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
  }
  const r = await srv.rest("POST", `/api/hubs/${hub}/:addToGroups`, { body: '{"groups":["g"]}', contentType: "text/plain" });
  assert.equal(r.status, 415, `:addToGroups with text/plain: ${r.status} ${r.text}`);
  await assertHealthy(srv);
});

test("bad input: an unmasked client frame fails the connection (RFC 6455: 1002)", T, async () => {
  const hub = uniqueHub();
  const { token } = await srv.serviceClient(hub).getClientAccessToken({ userId: "unmasked" });
  const c = await TcpWsClient.open(srv.port, `/client/hubs/${hub}?access_token=${token}`, { protocol: "json.webpubsub.azure.v1" });
  await c.waitFrame((f) => f.opcode === 1); // connected
  await c.write(encodeFrame(1, Buffer.from('{"type":"ping"}'), { mask: false }));
  await Promise.race([c.ended, c.waitClose(10000)]);
  const close = c.frames.find((f) => f.opcode === 8);
  if (close) assert.equal(close.closeCode, 1002);
  assert.equal(c.frames.some((f) => f.text && f.text.includes("pong")), false, "the unmasked ping was not processed");
  c.destroy();
  await assertHealthy(srv);
});

test("bad input: a text frame that is not UTF-8 fails the connection (1007)", T, async () => {
  const hub = uniqueHub();
  const { token } = await srv.serviceClient(hub).getClientAccessToken({ userId: "notutf8" });
  const c = await TcpWsClient.open(srv.port, `/client/hubs/${hub}?access_token=${token}`, { protocol: "json.webpubsub.azure.v1" });
  await c.waitFrame((f) => f.opcode === 1);
  await c.write(encodeFrame(1, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])));
  const close = await c.waitClose(10000);
  assert.ok([1007, 1003].includes(close.closeCode), `close code ${close.closeCode}`);
  c.destroy();
  await assertHealthy(srv);
});

// ---- a client that never reads ----

// A masked, empty client ping frame: writing it is how a socket that never reads notices that
// the server has gone (the write fails once the peer has closed or reset).
const PING = Buffer.from([0x89, 0x80, 1, 2, 3, 4]);

test("bad input: a client that never reads is disconnected while others get every message", { timeout: 150000 }, async () => {
  const hub = uniqueHub();
  const slowUser = uniqueName("slow");
  const { token } = await srv.serviceClient(hub).getClientAccessToken({ userId: slowUser });
  const { socket: slow } = await tcpHandshake(srv.port, `/client/hubs/${hub}?access_token=${token}`, { pauseAfter: true });
  let slowClosed = false;
  const slowClose = new Promise((resolve) => slow.on("close", () => ((slowClosed = true), resolve())));
  slow.on("error", () => {});
  await waitUntil(() => srv.serviceClient(hub).userExists(slowUser), { what: "the slow user to be connected" });
  const normal = await srv.newClient(hub, { userId: "normal" }, { protocol: "json" });

  const payload = Buffer.alloc(MiB, 0x5a); // the largest body the REST API takes
  const sc = srv.serviceClient(hub);
  const started = Date.now();
  const pinger = setInterval(() => {
    if (!slow.destroyed) slow.write(PING, () => {});
  }, 500);
  try {
    for (let i = 0; i < 40; i++) {
      payload.writeUInt32BE(i, 0);
      await sc.sendToAll(new Uint8Array(payload));
    }
    const h = await srv.rest("HEAD", "/api/health", { auth: false });
    assert.equal(h.status, 200, "health while the slow client is stuck");
    await waitUntil(() => normal.rec.all("message").length >= 40, { timeout: 60000, what: "40 messages at the normal client" });
    const seen = normal.rec.all("message").map((m) => Buffer.from(m.data).readUInt32BE(0));
    assert.deepEqual(seen, Array.from({ length: 40 }, (_, i) => i), "the normal client got all 40, in order");
    const left = 60000 - (Date.now() - started);
    await withDeadline(slowClose, Math.max(left, 1000), "the server to disconnect the client that never reads (socket 'close')");
    assert.ok(slowClosed);
    await waitUntil(async () => !(await sc.userExists(slowUser)), { timeout: 10000, what: "the slow user to be gone" });
  } finally {
    clearInterval(pinger);
    slow.destroy();
  }
  const h = await srv.rest("HEAD", "/api/health", { auth: false });
  assert.equal(h.status, 200);
  await assertHealthy(srv);
  await sleep(0);
});
