// PROTOCOL.md section 8, rows 59 and 61-63: :generateToken, OData filters, wildcard roles,
// runtime permission overrides.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { expectAckError, syncClient } from "./lib/checks.mjs";
import { decodeJwt } from "./lib/jwt.mjs";
import { JSON_PROTOCOL, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { sdkStatus } from "./lib/wait.mjs";

const T = { timeout: 30000 };
let srv;

before(async () => {
  srv = await startServer();
});
afterEach(async () => srv.closeClients());
after(async () => srv && srv.stop());

const received = (c) => c.rec.all("message").map((m) => m.data).filter((d) => !(d && d.sentinel));

test("row 59: :generateToken answers 200 {token} honouring userId, role, group, minutesToExpire", T, async () => {
  const hub = uniqueHub();
  const g1 = uniqueName("g");
  const r = await srv.rest("POST", `/api/hubs/${hub}/:generateToken`, {
    query: { userId: "gen-user", role: ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.x"], group: [g1, "g-two"], minutesToExpire: 5 },
    headers: { accept: "application/json, text/json" },
  });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get("content-type") ?? "", /application\/json/);
  assert.equal(typeof r.json.token, "string");
  const { header, payload } = decodeJwt(r.json.token);
  assert.match(header.alg, /^HS(256|384|512)$/);
  assert.equal(payload.sub, "gen-user");
  const roles = [].concat(payload.role);
  assert.deepEqual(roles.sort(), ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.x"]);
  assert.deepEqual([].concat(payload["webpubsub.group"]).sort(), [g1, "g-two"].sort());
  const now = Math.floor(Date.now() / 1000);
  assert.ok(Math.abs(payload.exp - (now + 300)) <= 30, `exp ${payload.exp} should be about now+300 (${now + 300})`);
  assert.ok(new URL(payload.aud).pathname.toLowerCase().replace(/\/$/, "") === `/client/hubs/${hub}`.toLowerCase(), `aud ${payload.aud}`);
  // The token works: it connects, carries the user, joins the groups and grants the roles.
  const sock = await srv.raw(`ws://127.0.0.1:${srv.port}/client/hubs/${hub}?access_token=${r.json.token}`, { protocols: JSON_PROTOCOL });
  const connected = await sock.waitJson((m) => m.type === "system" && m.event === "connected");
  assert.equal(connected.userId, "gen-user");
  assert.equal(await srv.serviceClient(hub).groupExists(g1), true);
  await sock.sendJson({ type: "joinGroup", group: "any-group", ackId: 1 });
  assert.equal((await sock.waitAck(1)).success, true);
});

test("row 59: :generateToken through the SDK's generated operation, defaults and clientType", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  const res = await sc.client.webPubSub.generateClientToken(hub, { userId: "sdk-gen", roles: ["webpubsub.sendToGroup"] });
  const { payload } = decodeJwt(res.token);
  assert.equal(payload.sub, "sdk-gen");
  const now = Math.floor(Date.now() / 1000);
  assert.ok(Math.abs(payload.exp - (now + 3600)) <= 30, `default expiry is 60 minutes (exp ${payload.exp})`);
  // Hubcast serves no MQTT or Socket.IO endpoint: no token for one (README compatibility table).
  for (const clientType of ["MQTT", "mqtt", "SocketIO"]) {
    const refused = await srv.rest("POST", `/api/hubs/${hub}/:generateToken`, { query: { clientType } });
    assert.equal(refused.status, 400, refused.text);
    assert.equal(refused.json.code, "BadRequest");
    assert.match(refused.json.message, /not supported/);
  }
  // With an access key the SDK signs an MQTT URL locally (no request): it names an endpoint
  // Hubcast does not serve, and the handshake says so.
  const { url } = await sc.getClientAccessToken({ clientProtocol: "mqtt" });
  assert.match(url, /\/clients\/mqtt\/hubs\//);
  const handshake = await fetch(url.replace(/^ws/, "http"));
  assert.equal(handshake.status, 404);
  const dflt = await srv.rest("POST", `/api/hubs/${hub}/:generateToken`, { query: { clientType: "Default" } });
  assert.equal(dflt.status, 200, dflt.text);
  const anon = await srv.rest("POST", `/api/hubs/${hub}/:generateToken`);
  assert.equal(anon.status, 200, anon.text);
  assert.equal(decodeJwt(anon.json.token).payload.sub, undefined, "no userId, no sub");
});

test("row 61: OData filters select the right connections", T, async () => {
  const hub = uniqueHub();
  const spec = [
    ["A", { userId: "u1", groups: ["ga", "gb"] }],
    ["B", { userId: "u2", groups: ["gb"] }],
    ["C", { userId: "o'brien" }],
    ["D", { userId: "Mixed", groups: ["ga"] }],
  ];
  const clients = {};
  for (const [name, opts] of spec) {
    clients[name] = await srv.newClient(hub, opts, { protocol: "json" });
    clients[name].name = name;
  }
  const filters = {
    "userId eq 'u1'": "A",
    "userId ne 'u1'": "BCD",
    "'ga' in groups": "AD",
    "'gb' in groups and userId ne 'u2'": "A",
    "userId in ('u1', 'u2')": "AB",
    "not ('ga' in groups)": "BC",
    "userId eq 'o''brien'": "C",
    "startswith(userId, 'u')": "AB",
    "endswith(userId, 'xed')": "D",
    "contains(userId, 'brie')": "C",
    "tolower(userId) eq 'mixed'": "D",
    "toupper(userId) eq 'U2'": "B",
    "length(userId) gt 2": "CD",
    "(userId eq 'u1' or userId eq 'u2') and 'gb' in groups": "AB",
    "userId eq 'u1' or userId eq 'Mixed' and 'gb' in groups": "A",
    [`connectionId eq '${clients.B.connectionId}'`]: "B",
    "length(groups) eq 2": "A",
    "substring(userId, 1) eq '1'": "A",
    "indexof(userId, 'brien') eq 2": "C",
    "concat(userId, 'x') eq 'u1x'": "A",
    "trim(userId) eq 'u1'": "A",
    "userId eq 'nobody'": "",
  };
  const sc = srv.serviceClient(hub);
  const entries = Object.entries(filters);
  const statuses = {};
  for (let i = 0; i < entries.length; i++) {
    const { status } = await sdkStatus((o) => sc.sendToAll({ f: i }, { filter: entries[i][0], ...o }));
    statuses[entries[i][0]] = status;
  }
  for (const c of Object.values(clients)) await syncClient(srv, c);
  const actual = {};
  const expected = {};
  entries.forEach(([filter, who], i) => {
    expected[filter] = `202 ${who}`;
    const got = Object.values(clients).filter((c) => received(c).some((d) => d.f === i)).map((c) => c.name).join("");
    actual[filter] = `${statuses[filter]} ${got}`;
  });
  assert.deepEqual(actual, expected);
});

test("row 61: userId eq null selects anonymous connections", T, async () => {
  const hub = uniqueHub();
  const anon = await srv.newClient(hub, {}, { protocol: "json" });
  const named = await srv.newClient(hub, { userId: "someone" }, { protocol: "json" });
  await srv.serviceClient(hub).sendToAll({ anon: 1 }, { filter: "userId eq null" });
  await anon.rec.wait("message", (m) => m.data && m.data.anon === 1);
  await syncClient(srv, named);
  assert.deepEqual(received(named), []);
});

test("row 61: an invalid filter is rejected with 400", T, async () => {
  const sc = srv.serviceClient(uniqueHub());
  for (const filter of ["userId eq", "userId eq 'unterminated", "nosuchfield eq 'x'", "userId eq 'a' and", "(userId eq 'a'", "userId === 'a'"]) {
    const { status } = await sdkStatus((o) => sc.sendToAll({ x: 1 }, { filter, ...o }));
    assert.equal(status, 400, `filter ${JSON.stringify(filter)}`);
  }
  const { status } = await sdkStatus((o) => sc.addConnectionsToGroups(["g"], "userId eq", o));
  assert.equal(status, 400, ":addToGroups with a bad filter");
});

test("row 62: webpubsub.joinLeaveGroups.<pattern>: * stays within one level", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "wild", roles: ["webpubsub.joinLeaveGroups.chat-*"] }, { protocol: "json" });
  for (const g of ["chat-1", "chat-", "chat-abc"]) await c.client.joinGroup(g);
  for (const g of ["chat.1", "chat-1.x", "chatroom", "x.chat-1"]) await expectAckError(c.client.joinGroup(g), "Forbidden");
  assert.equal(await srv.serviceClient(hub).hasPermission(c.connectionId, "joinLeaveGroup", { targetName: "chat-9" }), true);
  assert.equal(await srv.serviceClient(hub).hasPermission(c.connectionId, "joinLeaveGroup", { targetName: "chat.9" }), false);
});

test("row 62: webpubsub.sendToGroups.<pattern>: ** crosses levels", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "deep", roles: ["webpubsub.sendToGroups.clientA.**"] }, { protocol: "json" });
  const member = await srv.newClient(hub, { userId: "m", groups: ["clientA.alpha.room1"] }, { protocol: "json" });
  await c.client.sendToGroup("clientA.alpha.room1", { deep: 1 }, "json");
  await c.client.sendToGroup("clientA.x", { deep: 2 }, "json");
  await expectAckError(c.client.sendToGroup("clientB.alpha", { deep: 3 }, "json"), "Forbidden");
  await member.rec.wait("message", (m) => m.data && m.data.deep === 1);
  await expectAckError(c.client.joinGroup("clientA.alpha.room1"), "Forbidden");
});

test("row 62: ? matches exactly one character other than '.'", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "q", roles: ["webpubsub.joinLeaveGroups.clientA.rooms.?1"] }, { protocol: "json" });
  await c.client.joinGroup("clientA.rooms.a1");
  for (const g of ["clientA.rooms.1", "clientA.rooms.ab1", "clientA.rooms..1"]) await expectAckError(c.client.joinGroup(g), "Forbidden");
});

test("row 62: the singular role webpubsub.joinLeaveGroup.<group> is literal, not a pattern", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "lit", roles: ["webpubsub.joinLeaveGroup.chat-*"] }, { protocol: "json" });
  await c.client.joinGroup("chat-*");
  await expectAckError(c.client.joinGroup("chat-1"), "Forbidden");
});

test("row 63: revoking a literal group overrides an any-group role; granting restores it", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "ov", roles: ["webpubsub.sendToGroup"] }, { protocol: "json" });
  const sc = srv.serviceClient(hub);
  await c.client.sendToGroup("g1", "a", "text");
  await sc.revokePermission(c.connectionId, "sendToGroup", { targetName: "g1" });
  await expectAckError(c.client.sendToGroup("g1", "b", "text"), "Forbidden");
  await c.client.sendToGroup("g2", "c", "text");
  await sc.grantPermission(c.connectionId, "sendToGroup", { targetName: "g1" });
  await c.client.sendToGroup("g1", "d", "text");
});

test("row 63: revoke overrides a wildcard role for that group only", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "ovw", roles: ["webpubsub.joinLeaveGroups.room-*"] }, { protocol: "json" });
  await srv.serviceClient(hub).revokePermission(c.connectionId, "joinLeaveGroup", { targetName: "room-1" });
  await expectAckError(c.client.joinGroup("room-1"), "Forbidden");
  await c.client.joinGroup("room-2");
});

test("row 63: grant enables a send; revoke does not remove existing membership", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "gr", roles: ["webpubsub.joinLeaveGroup"] }, { protocol: "json" });
  const sc = srv.serviceClient(hub);
  await c.client.joinGroup(group);
  await expectAckError(c.client.sendToGroup(group, "no", "text"), "Forbidden");
  await sc.grantPermission(c.connectionId, "sendToGroup", { targetName: group });
  await c.client.sendToGroup(group, "yes", "text");
  await c.rec.wait("group", (m) => m.data === "yes");
  await sc.revokePermission(c.connectionId, "joinLeaveGroup", { targetName: group });
  await sc.group(group).sendToAll("still member", { contentType: "text/plain" });
  await c.rec.wait("message", (m) => m.data === "still member");
  await expectAckError(c.client.leaveGroup(group), "Forbidden");
});
