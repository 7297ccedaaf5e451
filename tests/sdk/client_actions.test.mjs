// PROTOCOL.md section 8, rows 12-18 and 22-24: what JSON clients do on the socket.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { expectAckError, groupData, syncClient, syncRaw, toBuf } from "./lib/checks.mjs";
import { JSON_PROTOCOL, RELIABLE_PROTOCOL, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { waitUntil } from "./lib/wait.mjs";

const T = { timeout: 30000 };
let srv;

before(async () => {
  srv = await startServer();
});
afterEach(async () => srv.closeClients());
after(async () => srv && srv.stop());

const JOIN = "webpubsub.joinLeaveGroup";
const SEND = "webpubsub.sendToGroup";

test("row 12: joinGroup and leaveGroup through the SDK are acked and take effect", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sc = srv.serviceClient(hub);
  const c = await srv.newClient(hub, { userId: "joiner", roles: [JOIN] }, { protocol: "json" });
  const joined = await c.client.joinGroup(group);
  assert.equal(joined.isDuplicated, false);
  assert.equal(typeof joined.ackId, "number");
  assert.equal(await sc.groupExists(group), true);
  await sc.group(group).sendToAll({ n: 1 });
  const m = await c.rec.wait("message", (x) => x.data && x.data.n === 1);
  assert.deepEqual(m.data, { n: 1 });
  const left = await c.client.leaveGroup(group);
  assert.equal(left.isDuplicated, false);
  assert.equal(await sc.groupExists(group), false, "the group vanishes with its last member");
  await sc.group(group).sendToAll({ n: 2 });
  await syncClient(srv, c);
  const got = c.rec.all("message").map((x) => x.data).filter((d) => d && d.n === 2);
  assert.deepEqual(got, [], "no group message after leaveGroup");
});

test("row 12: raw joinGroup/leaveGroup acks are {type:ack,ackId,success:true}", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sock = await srv.rawClient(hub, { userId: "rawjoin", roles: [JOIN] });
  await sock.sendJson({ type: "joinGroup", group, ackId: 11 });
  assert.deepEqual(await sock.waitAck(11), { type: "ack", ackId: 11, success: true });
  await sock.sendJson({ type: "leaveGroup", group, ackId: 12 });
  assert.deepEqual(await sock.waitAck(12), { type: "ack", ackId: 12, success: true });
  // Without an ackId the action happens and nothing is acked.
  await sock.sendJson({ type: "joinGroup", group });
  await waitUntil(() => srv.serviceClient(hub).groupExists(group), { what: "the group to exist after an un-acked joinGroup" });
  await syncRaw(srv, hub, sock);
  assert.equal(sock.jsons().filter((m) => m.type === "ack").length, 2);
});

test("row 13: sendToGroup fans out to members with from, group, fromUserId, dataType, data", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sender = await srv.newClient(hub, { userId: "alice", roles: [SEND] }, { protocol: "json" });
  const r1 = await srv.newClient(hub, { userId: "bob", groups: [group] }, { protocol: "json" });
  const r2 = await srv.newClient(hub, { userId: "carol", groups: [group] });
  const outsider = await srv.newClient(hub, { userId: "dave" }, { protocol: "json" });
  await sender.client.sendToGroup(group, { hello: "group" }, "json");
  await sender.client.sendToGroup(group, "plain", "text");
  for (const r of [r1, r2]) {
    const a = await r.rec.wait("group", (m) => m.dataType === "json");
    assert.equal(a.group, group);
    assert.equal(a.fromUserId, "alice");
    assert.deepEqual(a.data, { hello: "group" });
    const b = await r.rec.wait("group", (m) => m.dataType === "text");
    assert.equal(b.data, "plain");
    assert.equal(b.fromUserId, "alice");
  }
  const sock = await srv.rawClient(hub, { userId: "erin", groups: [group] });
  await sender.client.sendToGroup(group, { third: true }, "json");
  const raw = await sock.waitJson((m) => m.type === "message");
  assert.deepEqual(
    { type: raw.type, from: raw.from, group: raw.group, fromUserId: raw.fromUserId, dataType: raw.dataType, data: raw.data },
    { type: "message", from: "group", group, fromUserId: "alice", dataType: "json", data: { third: true } },
  );
  await syncClient(srv, outsider);
  assert.deepEqual(groupData(outsider), [], "non-members get nothing");
});

test("row 14: noEcho:true excludes the sender, noEcho:false includes it", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const a = await srv.newClient(hub, { userId: "a", roles: [SEND], groups: [group] }, { protocol: "json" });
  const b = await srv.newClient(hub, { userId: "b", groups: [group] }, { protocol: "json" });
  await a.client.sendToGroup(group, { m: 1 }, "json", { noEcho: true });
  await a.client.sendToGroup(group, { m: 2 }, "json", { noEcho: false });
  await b.rec.wait("group", (m) => m.data.m === 2);
  await a.rec.wait("group", (m) => m.data.m === 2);
  assert.deepEqual(groupData(b), [{ m: 1 }, { m: 2 }]);
  assert.deepEqual(groupData(a), [{ m: 2 }], "the sender got its noEcho message");
});

test("row 15: a sendToGroup without dataType is treated as json", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sender = await srv.rawClient(hub, { userId: "nodt", roles: [SEND] });
  const r = await srv.newClient(hub, { userId: "rcv", groups: [group] }, { protocol: "json" });
  await sender.sendJson({ type: "sendToGroup", group, data: { x: [1, 2] }, ackId: 1 });
  const ack = await sender.waitAck(1);
  assert.equal(ack.success, true, JSON.stringify(ack));
  const m = await r.rec.wait("group");
  assert.equal(m.dataType, "json");
  assert.deepEqual(m.data, { x: [1, 2] });
});

test("row 16: binary is base64 in JSON frames and a raw binary frame for raw clients", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const bytes = Uint8Array.from([0, 1, 2, 250, 255, 10, 13, 0]);
  const sender = await srv.newClient(hub, { userId: "bin", roles: [SEND] }, { protocol: "json" });
  const jsonRcv = await srv.rawClient(hub, { userId: "jr", groups: [group] });
  const sdkRcv = await srv.newClient(hub, { userId: "sr", groups: [group] });
  const user = uniqueName("raw");
  const rawRcv = await srv.raw(await srv.clientUrl(hub, { userId: user, groups: [group] }), {});
  await waitUntil(() => srv.serviceClient(hub).userExists(user), { what: "the raw member to exist" });
  await sender.client.sendToGroup(group, bytes.buffer, "binary");
  const j = await jsonRcv.waitJson((m) => m.type === "message");
  assert.equal(j.dataType, "binary");
  assert.equal(j.data, Buffer.from(bytes).toString("base64"));
  const s = await sdkRcv.rec.wait("group");
  assert.equal(s.dataType, "binary");
  assert.deepEqual(toBuf(s.data), Buffer.from(bytes));
  const f = await rawRcv.waitFrame();
  assert.equal(f.isBinary, true, "raw clients get a binary frame");
  assert.deepEqual(f.data, Buffer.from(bytes));
});

test("row 17: joinGroup without permission is acked Forbidden", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "noperm" }, { protocol: "json" });
  const detail = await expectAckError(c.client.joinGroup(group), "Forbidden");
  assert.equal(typeof detail.message, "string");
  assert.equal(await srv.serviceClient(hub).groupExists(group), false, "the forbidden join did not happen");
});

test("row 17: sendToGroup without permission is acked Forbidden and not delivered", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "nosend", roles: [JOIN] }, { protocol: "json" });
  const member = await srv.newClient(hub, { userId: "member", groups: [group] }, { protocol: "json" });
  await c.client.joinGroup(group);
  await expectAckError(c.client.sendToGroup(group, { secret: 1 }, "json"), "Forbidden");
  await syncClient(srv, member);
  assert.deepEqual(groupData(member), [], "membership never grants publish rights");
});

test("row 17: raw Forbidden ack shape, and group-scoped roles allow only their group", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "scoped", roles: ["webpubsub.joinLeaveGroup.g1", "webpubsub.sendToGroup.g1"] });
  await sock.sendJson({ type: "joinGroup", group: "g1", ackId: 1 });
  assert.equal((await sock.waitAck(1)).success, true);
  await sock.sendJson({ type: "joinGroup", group: "g2", ackId: 2 });
  const denied = await sock.waitAck(2);
  assert.equal(denied.success, false);
  assert.equal(denied.error.name, "Forbidden");
  await sock.sendJson({ type: "sendToGroup", group: "g1", dataType: "text", data: "ok", ackId: 3 });
  assert.equal((await sock.waitAck(3)).success, true);
  await sock.sendJson({ type: "sendToGroup", group: "g2", dataType: "text", data: "no", ackId: 4 });
  const d2 = await sock.waitAck(4);
  assert.equal(d2.success, false);
  assert.equal(d2.error.name, "Forbidden");
});

test("row 18: a reused ackId is acked Duplicate and not executed again", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "dup", roles: [JOIN, SEND] }, { protocol: "json" });
  const member = await srv.newClient(hub, { userId: "dupm", groups: [group] }, { protocol: "json" });
  const first = await c.client.joinGroup(group, { ackId: 500 });
  assert.equal(first.isDuplicated, false);
  const second = await c.client.joinGroup(group, { ackId: 500 });
  assert.equal(second.isDuplicated, true, "the SDK resolves a Duplicate ack as isDuplicated");
  const s1 = await c.client.sendToGroup(group, { once: 1 }, "json", { ackId: 501 });
  assert.equal(s1.isDuplicated, false);
  const s2 = await c.client.sendToGroup(group, { once: 2 }, "json", { ackId: 501 });
  assert.equal(s2.isDuplicated, true);
  await syncClient(srv, member);
  assert.deepEqual(groupData(member), [{ once: 1 }], "the duplicate send was not delivered");
});

test("row 18: raw Duplicate ack shape; a duplicate leaveGroup does not leave", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sock = await srv.rawClient(hub, { userId: "rawdup", roles: [JOIN] });
  await sock.sendJson({ type: "joinGroup", group, ackId: 7 });
  assert.equal((await sock.waitAck(7)).success, true);
  await sock.sendJson({ type: "joinGroup", group: `${group}-other`, ackId: 7 });
  const dup = await sock.waitJson((m) => m.type === "ack" && m.ackId === 7 && m.success === false);
  assert.equal(dup.error.name, "Duplicate");
  assert.equal(await srv.serviceClient(hub).groupExists(`${group}-other`), false, "the duplicate was not executed");
});

test("row 22: ping gets pong on json.webpubsub.azure.v1 and json.reliable.webpubsub.azure.v1", T, async () => {
  const hub = uniqueHub();
  for (const protocol of [JSON_PROTOCOL, RELIABLE_PROTOCOL]) {
    const sock = await srv.rawClient(hub, { userId: "pinger" }, protocol);
    await sock.sendJson({ type: "ping" });
    const pong = await sock.waitJson((m) => m.type === "pong");
    assert.deepEqual(pong, { type: "pong" }, `${protocol}: pong carries nothing else`);
    await sock.sendJson({ type: "ping" });
    await waitUntil(() => sock.jsons().filter((m) => m.type === "pong").length === 2, { what: `a second pong on ${protocol}` });
    assert.ok(sock.isOpen, `${protocol}: ping is not a malformed frame`);
    assert.equal(sock.frames.some((f) => f.json && f.json.type === "system" && f.json.event === "disconnected"), false);
  }
});

test("row 23: reliable message frames carry sequenceId 1,2,3... (REST and group messages)", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sock = await srv.rawClient(hub, { userId: "seq", groups: [group] }, RELIABLE_PROTOCOL);
  const plain = await srv.rawClient(hub, { userId: "noseq", groups: [group] }, JSON_PROTOCOL);
  const sc = srv.serviceClient(hub);
  await sc.sendToConnection(sock.connectionId, { i: 1 });
  await sc.group(group).sendToAll({ i: 2 });
  await sc.sendToAll({ i: 3 });
  await waitUntil(() => sock.messages().length >= 3, { what: "3 messages on the reliable socket" });
  const ids = sock.messages().map((m) => m.sequenceId);
  assert.deepEqual(ids, [1, 2, 3]);
  assert.deepEqual(sock.messages().map((m) => m.data.i), [1, 2, 3]);
  for (const f of sock.jsons().filter((m) => m.type !== "message")) {
    assert.equal(f.sequenceId, undefined, `non-message frame ${JSON.stringify(f)} has no sequenceId`);
  }
  await waitUntil(() => plain.messages().length >= 2, { what: "messages on the plain JSON socket" });
  assert.equal(plain.messages().some((m) => m.sequenceId !== undefined), false, "no sequenceId on json.webpubsub.azure.v1");
});

test("row 23: the SDK reliable client receives every message once, in order", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "sdkseq" });
  const sc = srv.serviceClient(hub);
  for (let i = 1; i <= 20; i++) await sc.sendToConnection(c.connectionId, { i });
  await waitUntil(() => c.rec.all("server").length >= 20, { what: "20 server messages" });
  assert.deepEqual(c.rec.all("server").map((m) => m.data.i), Array.from({ length: 20 }, (_, k) => k + 1));
  assert.deepEqual(c.rec.all("server").map((m) => m.sequenceId), Array.from({ length: 20 }, (_, k) => k + 1));
});

test("row 24: after sequenceAck N and a drop, recovery replays exactly the messages > N with their ids", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "recover" }, RELIABLE_PROTOCOL);
  const { connectionId, reconnectionToken } = sock;
  const sc = srv.serviceClient(hub);
  for (let i = 1; i <= 5; i++) await sc.sendToConnection(connectionId, { i });
  await waitUntil(() => sock.messages().length >= 5, { what: "5 messages before the drop" });
  assert.deepEqual(sock.messages().map((m) => m.sequenceId), [1, 2, 3, 4, 5]);
  await sock.sendJson({ type: "sequenceAck", sequenceId: 2 });
  await sock.roundTrip(); // the server has read the sequenceAck
  sock.terminate();
  const url = `${sock.url}&awps_connection_id=${encodeURIComponent(connectionId)}&awps_reconnection_token=${encodeURIComponent(reconnectionToken)}`;
  const resumed = await srv.raw(url, { protocols: RELIABLE_PROTOCOL });
  assert.equal(resumed.protocol, RELIABLE_PROTOCOL);
  await waitUntil(() => resumed.messages().some((m) => m.sequenceId === 5) || resumed.closeInfo, {
    what: "the replay of sequenceId 5",
  });
  assert.equal(resumed.closeInfo, null, `recovery socket closed: ${JSON.stringify(resumed.closeInfo)}`);
  await sc.sendToConnection(connectionId, { i: 6 });
  await waitUntil(() => resumed.messages().some((m) => m.data && m.data.i === 6), { what: "a new message after recovery" });
  const got = resumed.messages().map((m) => [m.sequenceId, m.data.i]);
  assert.deepEqual(got, [[3, 3], [4, 4], [5, 5], [6, 6]], "replayed exactly the un-acked messages, then continued numbering");
  const connectedAgain = resumed.jsons().filter((m) => m.type === "system" && m.event === "connected");
  for (const m of connectedAgain) assert.equal(m.connectionId, connectionId, "a connected frame after recovery keeps the id");
  assert.equal(await sc.connectionExists(connectionId), true);
});

test("row 24: sequenceAck of everything leaves nothing to replay", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "ackall" }, RELIABLE_PROTOCOL);
  const sc = srv.serviceClient(hub);
  for (let i = 1; i <= 3; i++) await sc.sendToConnection(sock.connectionId, { i });
  await waitUntil(() => sock.messages().length >= 3, { what: "3 messages" });
  await sock.sendJson({ type: "sequenceAck", sequenceId: 3 });
  await sock.roundTrip();
  sock.terminate();
  const url = `${sock.url}&awps_connection_id=${encodeURIComponent(sock.connectionId)}&awps_reconnection_token=${encodeURIComponent(sock.reconnectionToken)}`;
  const resumed = await srv.raw(url, { protocols: RELIABLE_PROTOCOL });
  await sc.sendToConnection(sock.connectionId, { i: 4 });
  await waitUntil(() => resumed.messages().length >= 1 || resumed.closeInfo, { what: "the first message after recovery" });
  assert.deepEqual(resumed.messages().map((m) => [m.sequenceId, m.data.i]), [[4, 4]]);
});

test("row 26: recovery with an invalid reconnection token is accepted, then closed with 1008", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "badrec" }, RELIABLE_PROTOCOL);
  sock.terminate();
  const url = `${sock.url}&awps_connection_id=${encodeURIComponent(sock.connectionId)}&awps_reconnection_token=not-the-token`;
  const resumed = await srv.raw(url, { protocols: RELIABLE_PROTOCOL });
  const closed = await resumed.waitClose(10000);
  assert.equal(closed.code, 1008);
});

test("row 12: leaving a group the connection is not in is acked success", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "leaver", roles: [JOIN] });
  await sock.sendJson({ type: "leaveGroup", group: "never-joined", ackId: 1 });
  assert.deepEqual(await sock.waitAck(1), { type: "ack", ackId: 1, success: true });
});

test("row 13: group names with spaces, dots and non-ASCII work end to end", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  const c = await srv.newClient(hub, { userId: "names", roles: [JOIN, SEND] }, { protocol: "json" });
  for (const group of ["g 1", "a.b.c", "grüße", "x/y", "50%"]) {
    await c.client.joinGroup(group);
    assert.equal(await sc.groupExists(group), true, `groupExists(${JSON.stringify(group)})`);
    await c.client.sendToGroup(group, { from: "client", group }, "json");
    await sc.group(group).sendToAll({ from: "rest", group });
    const a = await c.rec.wait("group", (m) => m.data && m.data.from === "client" && m.data.group === group);
    assert.equal(a.group, group);
    await c.rec.wait("message", (m) => m.data && m.data.from === "rest" && m.data.group === group);
  }
});

test("row 21: sendEvent with no event handler configured gets an error ack, the connection stays", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "evt" }, { protocol: "json" });
  let err;
  try {
    await c.client.sendEvent("someEvent", { a: 1 }, "json");
  } catch (e) {
    err = e;
  }
  assert.ok(err && err.errorDetail, `expected an error ack, got ${err ? err.message : "success"}`);
  assert.equal(typeof err.errorDetail.name, "string");
  await syncClient(srv, c);
});

test("row 25: the SDK reliable client recovers from a dropped socket: same connection, groups kept, nothing lost", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "sdkrec", roles: [JOIN] }, { autoReconnect: false });
  const sc = srv.serviceClient(hub);
  await c.client.joinGroup(group);
  for (let i = 1; i <= 3; i++) await sc.sendToConnection(c.connectionId, { i });
  await waitUntil(() => c.rec.all("message").length >= 3, { what: "3 messages before the drop" });
  c.client._wsClient._socket.terminate(); // an abrupt transport drop, as a network failure would
  await sc.sendToConnection(c.connectionId, { i: 4 });
  await sc.group(group).sendToAll({ i: 5 });
  await waitUntil(() => c.rec.all("message").some((m) => m.data && m.data.i === 5), { timeout: 20000, what: "messages sent during the drop" });
  await sc.sendToConnection(c.connectionId, { i: 6 });
  await waitUntil(() => c.rec.all("message").some((m) => m.data && m.data.i === 6), { what: "a message after recovery" });
  assert.deepEqual(c.rec.all("message").map((m) => m.data.i), [1, 2, 3, 4, 5, 6]);
  assert.equal(c.rec.all("connected").length, 1, "no second connected event");
  assert.equal(c.rec.all("disconnected").length, 0, "no disconnected event");
  assert.equal(c.client._connectionId, c.connectionId);
  assert.equal(await sc.connectionExists(c.connectionId), true);
});

test("row 25: raw recovery replays messages sent while the socket was down, numbering on", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sock = await srv.rawClient(hub, { userId: "rawrec", groups: [group] }, RELIABLE_PROTOCOL);
  const sc = srv.serviceClient(hub);
  await sc.sendToConnection(sock.connectionId, { i: 1 });
  await sock.waitJson((m) => m.type === "message");
  await sock.sendJson({ type: "sequenceAck", sequenceId: 1 });
  await sock.roundTrip();
  sock.terminate();
  await sock.waitClose();
  await sc.sendToConnection(sock.connectionId, { i: 2 });
  await sc.group(group).sendToAll({ i: 3 });
  const url = `${sock.url}&awps_connection_id=${encodeURIComponent(sock.connectionId)}&awps_reconnection_token=${encodeURIComponent(sock.reconnectionToken)}`;
  const resumed = await srv.raw(url, { protocols: RELIABLE_PROTOCOL });
  await waitUntil(() => resumed.messages().length >= 2 || resumed.closeInfo, { what: "the replay" });
  assert.deepEqual(resumed.messages().map((m) => [m.sequenceId, m.data.i]), [[2, 2], [3, 3]]);
  assert.equal(await sc.groupExists(group), true, "the group membership survived the drop");
});

test("row 22: the SDK client's keep-alive pings are answered with pong frames", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "keepalive" }, { protocol: "json", keepAliveIntervalInMs: 100, keepAliveTimeoutInMs: 5000, autoReconnect: false });
  let pongs = 0;
  c.client._wsClient._socket.on("message", (data) => {
    try {
      if (JSON.parse(data.toString()).type === "pong") pongs += 1;
    } catch {
      // not JSON: the SDK itself would throw on this
    }
  });
  await waitUntil(() => pongs >= 3, { what: "3 pongs to the SDK's pings" });
  assert.equal(c.rec.all("disconnected").length, 0);
});

test("row 41: stop() of a reliable SDK client ends the connection at once (close 1000 is not a drop)", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "stopper" });
  const sc = srv.serviceClient(hub);
  assert.equal(await sc.connectionExists(c.connectionId), true);
  c.client.stop();
  await c.rec.wait("stopped", () => true, 10000);
  await waitUntil(async () => !(await sc.connectionExists(c.connectionId)), { timeout: 5000, what: "the connection to end well before the 30 s hold" });
});

test("row 77: after a REST close the SDK reconnects afresh and rejoins its groups", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "rejoin", roles: [JOIN] });
  await c.client.joinGroup(group);
  const sc = srv.serviceClient(hub);
  await sc.closeConnection(c.connectionId, { reason: "go away" });
  const d = await c.rec.wait("disconnected", () => true, 15000);
  assert.equal(d.message && d.message.message, "go away");
  const second = await c.rec.wait("connected", (e) => e.connectionId !== c.connectionId, 15000);
  assert.notEqual(second.connectionId, c.connectionId);
  await waitUntil(async () => (await sc.group(group).listConnections().then(async (it) => {
    const ids = [];
    for await (const m of it) ids.push(m.connectionId);
    return ids;
  })).includes(second.connectionId), { what: "the new connection to rejoin the group" });
  await sc.group(group).sendToAll({ after: "rejoin" });
  await c.rec.wait("message", (m) => m.data && m.data.after === "rejoin");
});

const recoveryUrl = (sock, id = sock.connectionId, token = sock.reconnectionToken) =>
  `${sock.url}&awps_connection_id=${encodeURIComponent(id)}&awps_reconnection_token=${encodeURIComponent(token)}`;

test("row 25: recovery takes over a connection whose old socket still looks open", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "takeover" }, RELIABLE_PROTOCOL);
  const sc = srv.serviceClient(hub);
  await sc.sendToConnection(sock.connectionId, { i: 1 });
  await sock.waitJson((m) => m.type === "message");
  // No drop seen by the server: a half-open TCP connection, then the client recovers.
  const resumed = await srv.raw(recoveryUrl(sock), { protocols: RELIABLE_PROTOCOL });
  await sc.sendToConnection(sock.connectionId, { i: 2 });
  await waitUntil(() => resumed.messages().some((m) => m.data && m.data.i === 2) || resumed.closeInfo, { what: "delivery on the new socket" });
  assert.equal(resumed.closeInfo, null, `recovery socket closed: ${JSON.stringify(resumed.closeInfo)}`);
  const m2 = resumed.messages().find((m) => m.data.i === 2);
  assert.equal(m2.sequenceId, 2);
  await sock.waitClose(10000); // the old socket is let go
  assert.equal(sock.messages().some((m) => m.data && m.data.i === 2), false, "the old socket got nothing new");
});

test("row 25: the processed ackIds survive recovery (a resent ackId is Duplicate)", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "ackrec", roles: [JOIN] }, RELIABLE_PROTOCOL);
  await sock.sendJson({ type: "joinGroup", group: "ack-g", ackId: 9 });
  assert.equal((await sock.waitAck(9)).success, true);
  sock.terminate();
  await sock.waitClose();
  const resumed = await srv.raw(recoveryUrl(sock), { protocols: RELIABLE_PROTOCOL });
  await resumed.sendJson({ type: "joinGroup", group: "ack-g-other", ackId: 9 });
  const ack = await resumed.waitAck(9);
  assert.equal(ack.success, false, JSON.stringify(ack));
  assert.equal(ack.error.name, "Duplicate");
});

test("row 26: recovery is refused with close 1008 for another connection's token, a non-reliable protocol, or a REST-closed connection", T, async () => {
  const hub = uniqueHub();
  const a = await srv.rawClient(hub, { userId: "ra" }, RELIABLE_PROTOCOL);
  const b = await srv.rawClient(hub, { userId: "rb" }, RELIABLE_PROTOCOL);
  a.terminate();
  const crossed = await srv.raw(recoveryUrl(a, a.connectionId, b.reconnectionToken), { protocols: RELIABLE_PROTOCOL });
  assert.equal((await crossed.waitClose()).code, 1008, "a token of another connection");
  const plain = await srv.raw(recoveryUrl(a), { protocols: JSON_PROTOCOL });
  assert.equal((await plain.waitClose()).code, 1008, "recovery on json.webpubsub.azure.v1");
  const c = await srv.rawClient(hub, { userId: "rc" }, RELIABLE_PROTOCOL);
  await srv.serviceClient(hub).closeConnection(c.connectionId, { reason: "final" });
  await c.waitClose();
  const closedByServer = await srv.raw(recoveryUrl(c), { protocols: RELIABLE_PROTOCOL });
  assert.equal((await closedByServer.waitClose()).code, 1008, "a connection the server closed");
  const unknown = await srv.raw(recoveryUrl(a, "0123456789abcdef0123456789abcdef", a.reconnectionToken), { protocols: RELIABLE_PROTOCOL });
  assert.equal((await unknown.waitClose()).code, 1008, "an unknown connection id");
});

test("row 27: a dropped reliable connection is held for the hold window, then recovery is refused", { timeout: 60000 }, async () => {
  const short = await startServer({ args: ["--reliable-hold", "2"] });
  try {
    const hub = uniqueHub();
    const sock = await short.rawClient(hub, { userId: "held" }, RELIABLE_PROTOCOL);
    const sc = short.serviceClient(hub);
    sock.terminate();
    await sock.waitClose();
    const dropped = Date.now();
    await waitUntil(async () => !(await sc.connectionExists(sock.connectionId)), { timeout: 20000, what: "the held connection to end" });
    assert.ok(Date.now() - dropped >= 1500, `the connection ended ${Date.now() - dropped} ms after the drop, before the 2 s hold`);
    const late = await short.raw(recoveryUrl(sock), { protocols: RELIABLE_PROTOCOL });
    assert.equal((await late.waitClose()).code, 1008);
  } finally {
    await short.stop();
  }
});
