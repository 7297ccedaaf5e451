// PROTOCOL.md section 8 row 29 and 3.7: the protobuf subprotocols, protobuf.webpubsub.azure.v1
// and protobuf.reliable.webpubsub.azure.v1, spoken by a client written here with protobufjs from
// server/proto/webpubsub.proto (lib/protobuf.mjs): join/leave/send/event/ack/sequenceAck, text,
// binary, JSON and google.protobuf.Any payloads, groups mixing JSON, protobuf and raw members (a
// message keeps its data type and bytes whichever protocol sends or receives it), recovery after
// a dropped socket and after `kill -9`, the client SDK 1.1 messages over protobuf, and malformed
// frames (documented close, never a crash).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";

import { assertHealthy } from "./lib/checks.mjs";
import { PROTOBUF, PROTOBUF_RELIABLE, ackAll, anyBytes, loadSchema, protoClient } from "./lib/protobuf.mjs";
import { JSON_PROTOCOL, RELIABLE_PROTOCOL, newAccessKey, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { startUpstream } from "./lib/upstream.mjs";
import { waitUntil } from "./lib/wait.mjs";

const T = { timeout: 60000 };
const ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
const HUB_EVENTS = uniqueHub("pbev");

let srv;
let up;
let events;

before(async () => {
  await loadSchema();
  up = await startUpstream({ name: "pb-upstream" });
  events = up.handler(HUB_EVENTS);
  srv = await startServer({ args: ["--event-handler", `${HUB_EVENTS}=${up.template}`, "--log-level", "info"] });
});
afterEach(async () => srv.closeClients());
after(async () => {
  if (srv) await srv.stop();
  if (up) await up.close();
});

test("row 29: both protobuf subprotocols are negotiated; connected carries a reconnection token only when reliable", T, async () => {
  const hub = uniqueHub();
  const plain = await protoClient(srv, hub, { userId: "pb-user" }, PROTOBUF);
  assert.equal(plain.protocol, PROTOBUF);
  const connected = plain.pbs[0].systemMessage.connectedMessage;
  assert.equal(connected.userId, "pb-user");
  assert.ok(connected.connectionId);
  assert.equal(connected.reconnectionToken ?? "", "");
  const reliable = await protoClient(srv, hub, {}, PROTOBUF_RELIABLE);
  assert.equal(reliable.protocol, PROTOBUF_RELIABLE);
  assert.ok(reliable.reconnectionToken, "reliable clients get a reconnection token");
  // ping -> pong
  await reliable.pbRoundTrip();
});

for (const protocol of [PROTOBUF, PROTOBUF_RELIABLE]) {
  test(`row 29 (${protocol}): join, send, ack, leave; text, binary, JSON and Any payloads; sequence ids`, T, async () => {
    const hub = uniqueHub();
    const group = uniqueName("g");
    const a = await protoClient(srv, hub, { userId: "a", roles: ROLES }, protocol);
    const b = await protoClient(srv, hub, { userId: "b", roles: ROLES }, protocol);
    for (const [sock, ackId] of [[a, 1], [b, 1]]) {
      await sock.sendPb({ joinGroupMessage: { group, ackId } });
      assert.equal((await sock.waitPbAck(ackId)).success, true);
    }
    const any = anyBytes("type.googleapis.com/test.Thing", Buffer.from([8, 150, 1]));
    const payloads = [
      { textData: "hello \u00e9" },
      { binaryData: Buffer.from([0, 1, 2, 255]) },
      { jsonData: '{"n":[1,2.50,"x"]}' },
      { protobufData: { type_url: "type.googleapis.com/test.Thing", value: Buffer.from([8, 150, 1]) } },
    ];
    let ackId = 10;
    for (const data of payloads) {
      await a.sendPb({ sendToGroupMessage: { group, ackId: ++ackId, data, noEcho: true } });
      assert.equal((await a.waitPbAck(ackId)).success, true);
    }
    await waitUntil(() => b.dataMessages().length === payloads.length, { what: "b has every message" });
    const got = b.dataMessages();
    assert.equal(got[0].data.textData, "hello \u00e9");
    assert.deepEqual(got[1].data.binaryData, Buffer.from([0, 1, 2, 255]));
    assert.equal(got[2].data.jsonData, '{"n":[1,2.50,"x"]}');
    assert.equal(got[3].data.protobufData.type_url, "type.googleapis.com/test.Thing");
    assert.deepEqual(anyBytes(got[3].data.protobufData.type_url, got[3].data.protobufData.value), any);
    for (const d of got) {
      assert.equal(d.from, "group");
      assert.equal(d.group, group);
      assert.equal(d.fromUserId, "a");
    }
    if (protocol === PROTOBUF_RELIABLE) {
      assert.deepEqual(got.map((d) => d.sequenceId), [1, 2, 3, 4]);
      assert.equal(await ackAll(b), 4);
    } else {
      assert.ok(got.every((d) => d.sequenceId === undefined), "no sequence ids without reliability");
    }
    assert.equal(a.dataMessages().length, 0, "noEcho kept the sender out");

    // Forbidden, Duplicate, BadRequest acks; leave.
    const c = await protoClient(srv, hub, { userId: "c" }, protocol);
    await c.sendPb({ joinGroupMessage: { group, ackId: 1 } });
    assert.equal((await c.waitPbAck(1)).error.name, "Forbidden");
    await a.sendPb({ sendToGroupMessage: { group, ackId: 11, data: { textData: "again" } } });
    const dup = await a.waitPb((m) => m.ackMessage?.ackId === 11 && m.ackMessage.error);
    assert.equal(dup.ackMessage.error.name, "Duplicate");
    await a.sendPb({ sendToGroupMessage: { group, ackId: 20, data: { jsonData: "{nope" } } });
    assert.equal((await a.waitPbAck(20)).error.name, "BadRequest");
    await b.sendPb({ leaveGroupMessage: { group, ackId: 2 } });
    assert.equal((await b.waitPbAck(2)).success, true);
    await a.sendPb({ sendToGroupMessage: { group, ackId: 21, data: { textData: "after leave" } } });
    await a.waitPbAck(21);
    await b.pbRoundTrip();
    assert.equal(b.dataMessages().length, payloads.length, "nothing after leaving");
  });
}

test("row 29: a group of JSON, protobuf and raw members: every message keeps its data type and bytes", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("mixed");
  const token = { roles: ROLES, groups: [group] };
  const pb = await protoClient(srv, hub, { userId: "pb", ...token }, PROTOBUF_RELIABLE);
  const js = await srv.rawClient(hub, { userId: "js", ...token }, RELIABLE_PROTOCOL);
  const raw = await srv.raw(await srv.clientUrl(hub, { userId: "raw", ...token }), {});
  const any = anyBytes("type.googleapis.com/a.B", Buffer.from("zz"));

  // JSON client -> protobuf and raw members.
  const fromJson = [
    { dataType: "text", data: "t\u00fcxt" },
    { dataType: "json", data: { a: [1, 2.5], s: "x" } },
    { dataType: "binary", data: Buffer.from([9, 0, 8]).toString("base64") },
    { dataType: "protobuf", data: any.toString("base64") },
  ];
  let ackId = 0;
  for (const m of fromJson) {
    await js.sendJson({ type: "sendToGroup", group, ackId: ++ackId, noEcho: true, ...m });
    assert.equal((await js.waitAck(ackId)).success, true);
  }
  await waitUntil(() => pb.dataMessages().length === 4, { what: "protobuf member got the JSON client's messages" });
  const p = pb.dataMessages();
  assert.equal(p[0].data.textData, "t\u00fcxt");
  assert.deepEqual(JSON.parse(p[1].data.jsonData), { a: [1, 2.5], s: "x" });
  assert.deepEqual(p[2].data.binaryData, Buffer.from([9, 0, 8]));
  assert.deepEqual(anyBytes(p[3].data.protobufData.type_url, p[3].data.protobufData.value), any);
  assert.equal(p[0].fromUserId, "js");
  await waitUntil(() => raw.frames.length >= 4, { what: "raw member got them" });
  assert.equal(raw.frames[0].text, "t\u00fcxt");
  assert.equal(raw.frames[2].isBinary, true);
  assert.deepEqual(raw.frames[2].data, Buffer.from([9, 0, 8]));
  assert.deepEqual(raw.frames[3].data, any, "Any payloads reach raw clients as its bytes");

  // Protobuf client -> JSON member: the same data types and bytes the other way round.
  const fromPb = [
    { textData: "from pb" },
    { jsonData: '{"k":[true,null]}' },
    { binaryData: Buffer.from([1, 2, 3]) },
    { protobufData: { type_url: "type.googleapis.com/a.B", value: Buffer.from("zz") } },
  ];
  for (const data of fromPb) {
    await pb.sendPb({ sendToGroupMessage: { group, ackId: ++ackId, data, noEcho: true } });
    assert.equal((await pb.waitPbAck(ackId)).success, true);
  }
  await waitUntil(() => js.messages().length === 4, { what: "JSON member got the protobuf client's messages" });
  const j = js.messages();
  assert.deepEqual(j.map((m) => m.dataType), ["text", "json", "binary", "protobuf"]);
  assert.equal(j[0].data, "from pb");
  assert.deepEqual(j[1].data, { k: [true, null] });
  assert.equal(j[2].data, Buffer.from([1, 2, 3]).toString("base64"));
  assert.equal(j[3].data, any.toString("base64"));
  assert.ok(j.every((m) => m.fromUserId === "pb" && m.group === group));

  // A JSON client's "protobuf" payload that is no Any would break protobuf members: refused.
  await js.sendJson({ type: "sendToGroup", group, ackId: 99, dataType: "protobuf", data: "CgU=" });
  assert.equal((await js.waitAck(99)).error.name, "BadRequest");
});

test("row 19 over protobuf: events reach the handler with the data type's Content-Type; the answer comes back as a message", T, async () => {
  const sock = await protoClient(srv, HUB_EVENTS, { userId: "pbev" }, PROTOBUF);
  events.script.handleUserEvent = (req, res) => {
    if (req.dataType === "text") return res.success(`echo:${req.data}`, "text");
    if (req.dataType === "json") return res.success(JSON.stringify({ got: req.data }), "json");
    return res.success(Buffer.from(req.data), "binary");
  };
  await sock.sendPb({ eventMessage: { event: "echo", ackId: 1, data: { textData: "hi" } } });
  assert.equal((await sock.waitPbAck(1)).success, true);
  await sock.sendPb({ eventMessage: { event: "echo", ackId: 2, data: { jsonData: "[1]" } } });
  await sock.waitPbAck(2);
  await sock.sendPb({ eventMessage: { event: "echo", ackId: 3, data: { binaryData: Buffer.from([7]) } } });
  await sock.waitPbAck(3);
  const answers = sock.dataMessages();
  assert.equal(answers.length, 3);
  assert.equal(answers[0].from, "server");
  assert.equal(answers[0].data.textData, "echo:hi");
  assert.deepEqual(JSON.parse(answers[1].data.jsonData), { got: [1] });
  assert.deepEqual(answers[2].data.binaryData, Buffer.from([7]));
  const seen = events.events("user", sock.connectionId);
  assert.deepEqual(seen.map((e) => e.http.headers["content-type"].split(";")[0]), ["text/plain", "application/json", "application/octet-stream"]);
  assert.ok(seen.every((e) => e.http.headers["ce-subprotocol"] === PROTOBUF));

  // An Any payload goes upstream as application/x-protobuf (which express itself does not read).
  let protobufRequest;
  events.script.intercept = (req, res) => {
    if (req.headers["content-type"]?.startsWith("application/x-protobuf")) {
      const chunks = [];
      req.on("data", (d) => chunks.push(d));
      req.on("end", () => {
        protobufRequest = Buffer.concat(chunks);
        res.statusCode = 204;
        res.end();
      });
      return true;
    }
    return false;
  };
  const any = anyBytes("type.googleapis.com/a.B", Buffer.from([1]));
  await sock.sendPb({ eventMessage: { event: "echo", ackId: 4, data: { protobufData: { type_url: "type.googleapis.com/a.B", value: Buffer.from([1]) } } } });
  assert.equal((await sock.waitPbAck(4)).success, true);
  assert.deepEqual(protobufRequest, any);
  events.script.intercept = undefined;
});

test("row 25 over protobuf: a reliable protobuf client recovers what it missed while its socket was down", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  const sock = await protoClient(srv, hub, { userId: "rec" }, PROTOBUF_RELIABLE);
  await sc.sendToUser("rec", "one", { contentType: "text/plain" });
  await waitUntil(() => sock.dataMessages().length === 1);
  await ackAll(sock);
  await sock.pbRoundTrip();
  sock.terminate(); // an abrupt drop: the session is held
  await sock.waitClose();
  for (const text of ["two", "three"]) await sc.sendToUser("rec", text, { contentType: "text/plain" });
  const back = await protoClient(srv, hub, {}, PROTOBUF_RELIABLE, { recoverFrom: sock });
  await waitUntil(() => back.dataMessages().length >= 2, { what: "the missed messages" });
  const replayed = back.dataMessages();
  assert.deepEqual(replayed.map((d) => d.data.textData), ["two", "three"]);
  assert.deepEqual(replayed.map((d) => d.sequenceId), [2, 3]);
});

test("row 25 over protobuf: recovery after kill -9 of the server", { timeout: 90000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hubcast-pb-kill-"));
  const keys = [newAccessKey()];
  let first = await startServer({ dataDir, keys });
  let second;
  try {
    const hub = uniqueHub();
    const sock = await protoClient(first, hub, { userId: "k9" }, PROTOBUF_RELIABLE);
    const sc = first.serviceClient(hub);
    await sc.sendToUser("k9", "before", { contentType: "text/plain" });
    await waitUntil(() => sock.dataMessages().length === 1);
    await ackAll(sock);
    await sock.pbRoundTrip();
    sock.terminate();
    await sock.waitClose();
    await sc.sendToUser("k9", "missed", { contentType: "text/plain" });
    await first.kill9();
    second = await startServer({ dataDir, keys, port: first.port });
    const back = await protoClient(second, hub, {}, PROTOBUF_RELIABLE, { recoverFrom: sock });
    // The acknowledgement may not have been checkpointed before the kill: the client drops
    // what it has seen by its sequence id, as the SDK does.
    const unseen = () => back.dataMessages().filter((d) => d.sequenceId > 1);
    await waitUntil(() => unseen().length >= 1, { what: "the message sent before the kill" });
    assert.equal(unseen()[0].data.textData, "missed");
    assert.equal(unseen()[0].sequenceId, 2);
    assert.ok(back.pbs[0].systemMessage?.connectedMessage, "a recovered session starts with `connected`");
    assert.equal(back.pbs[0].systemMessage.connectedMessage.connectionId, sock.connectionId);
  } finally {
    if (second) await second.stop();
    if (first.alive()) await first.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("client SDK 1.1 over protobuf: invoke, group stream and group state behave as in JSON", T, async () => {
  const group = uniqueName("sdk11");
  events.script.handleUserEvent = (req, res) => res.success(`answer:${req.data}`, "text");
  const pb = await protoClient(srv, HUB_EVENTS, { userId: "p", roles: ROLES, groups: [group] }, PROTOBUF_RELIABLE);
  const js = await srv.rawClient(HUB_EVENTS, { userId: "j", roles: ROLES, groups: [group] }, JSON_PROTOCOL);

  await pb.sendPb({ invokeMessage: { invocationId: "i1", event: "ask", data: { textData: "q" } } });
  const response = (await pb.waitPb((m) => m.invokeResponseMessage)).invokeResponseMessage;
  assert.equal(response.invocationId, "i1");
  assert.equal(response.success, true);
  assert.equal(response.data.textData, "answer:q");

  await pb.sendPb({ sendToGroupMessage: { group, stream: { streamId: "s1" } } });
  const ack = (await pb.waitPb((m) => m.streamAckMessage)).streamAckMessage;
  assert.deepEqual(ack, { streamId: "s1", expectedSequenceId: 1 });
  await pb.sendPb({ streamDataMessage: { streamId: "s1", streamSequenceId: 1, data: { textData: "c1" } } });
  await pb.sendPb({ streamDataMessage: { streamId: "s1", streamSequenceId: 3, data: { textData: "c3" } } });
  const nack = (await pb.waitPb((m) => m.streamNackMessage)).streamNackMessage;
  assert.equal(nack.name, "InvalidSequenceId");
  assert.equal(nack.expectedSequenceId, 2);
  await pb.sendPb({ streamEndMessage: { streamId: "s1" } });
  await pb.waitPb((m) => m.streamClosedMessage && !m.streamClosedMessage.error);
  await waitUntil(() => js.messages().length === 2, { what: "the JSON member got the stream" });
  const [chunk, end] = js.messages();
  assert.deepEqual(chunk.stream, { streamId: "s1", streamSequenceId: 1, endOfStream: false });
  assert.equal(chunk.data, "c1");
  assert.deepEqual(end.stream, { streamId: "s1", streamSequenceId: 2, endOfStream: true });

  await js.sendJson({ type: "setGroupState", group, ackId: 5, state: { mood: "ok" } });
  assert.equal((await js.waitAck(5)).success, true);
  await pb.sendPb({ subscribeGroupStateMessage: { group, ackId: 6 } });
  const snapshot = (await pb.waitPb((m) => m.groupStateSnapshotMessage)).groupStateSnapshotMessage;
  assert.equal((await pb.waitPbAck(6)).success, true);
  assert.equal(snapshot.group, group);
  assert.equal(snapshot.items.length, 1);
  assert.equal(snapshot.items[0].userId, "j");
  assert.deepEqual(snapshot.items[0].state.values, { mood: "ok" });
  await js.sendJson({ type: "setGroupState", group, ackId: 7 });
  const update = (await pb.waitPb((m) => m.groupStateUpdateMessage)).groupStateUpdateMessage;
  assert.equal(update.items[0].connectionId, js.connectionId);
  assert.equal(update.items[0].state, undefined, "cleared");
});

test("bad input over protobuf: truncated varints close with 1003; unknown fields and types are skipped; 1 MiB strings are refused", T, async () => {
  const hub = uniqueHub();
  // A truncated varint: `disconnected` (a protobuf frame), then close 1003.
  const bad = await protoClient(srv, hub, { roles: ROLES }, PROTOBUF);
  await bad.send(Buffer.from([0x32, 0xff, 0xff]), { binary: true });
  const close = await bad.waitClose();
  assert.equal(close.code, 1003);
  assert.ok(bad.pbs.some((m) => m.systemMessage?.disconnectedMessage), "disconnected before the close");

  // A text frame on a protobuf subprotocol: 1003 too.
  const text = await protoClient(srv, hub, {}, PROTOBUF);
  await text.send("{}");
  assert.equal((await text.waitClose()).code, 1003);

  const ok = await protoClient(srv, hub, { roles: ROLES }, PROTOBUF);
  // Unknown fields (field 50 inside join_group_message, field 127 at the top) are skipped.
  const { Up } = await loadSchema();
  const join = Buffer.from(Up.encode(Up.create({ joinGroupMessage: { group: "g", ackId: 1 } })).finish());
  const withUnknown = Buffer.concat([Buffer.from([0x32, join.length - 2 + 3]), join.subarray(2), Buffer.from([0x90, 0x03, 0x01]), Buffer.from([0xf8, 0x07, 0x05])]);
  await ok.send(withUnknown, { binary: true });
  assert.equal((await ok.waitPbAck(1)).success, true);
  // An empty UpstreamMessage, and a known field with the wrong wire type: unknown types, ignored.
  await ok.send(Buffer.alloc(0), { binary: true });
  await ok.send(Buffer.from([0x30, 0x01]), { binary: true });
  await ok.pbRoundTrip();
  assert.ok(ok.isOpen);
  // A group name of almost 1 MiB: BadRequest (the frame fits the limit, the name does not).
  await ok.sendPb({ joinGroupMessage: { group: "g".repeat(1000000), ackId: 2 } });
  assert.equal((await ok.waitPbAck(2)).error.name, "BadRequest");
  // A frame over 1 MiB: close 1009.
  await ok.sendPb({ sendToGroupMessage: { group: "g", ackId: 3, data: { textData: "x".repeat(1 << 20) } } }).catch(() => {});
  assert.equal((await ok.waitClose()).code, 1009);
  await assertHealthy(srv, "after malformed protobuf");
  assert.match(srv.output(), /ignored a/, "ignored messages are logged");
});
