// PROTOCOL.md section 8, rows 31-32: plain WebSocket clients (no subprotocol) and frame size.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { syncRaw } from "./lib/checks.mjs";
import { TcpWsClient } from "./lib/tcp.mjs";
import { JSON_PROTOCOL, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { waitUntil, withDeadline } from "./lib/wait.mjs";

const T = { timeout: 30000 };
const MiB = 1024 * 1024;
let srv;

before(async () => {
  srv = await startServer();
});
afterEach(async () => srv.closeClients());
after(async () => srv && srv.stop());

async function rawMember(hub, opts = {}) {
  const user = opts.userId ?? uniqueName("raw");
  const sock = await srv.raw(await srv.clientUrl(hub, { userId: user, ...opts }), {});
  assert.equal(sock.protocol, "", "no subprotocol was offered, none selected");
  await waitUntil(() => srv.serviceClient(hub).userExists(user), { what: `raw user ${user} to exist` });
  sock.userId = user;
  return sock;
}

test("row 31: REST text/plain reaches a raw client as a text frame", T, async () => {
  const hub = uniqueHub();
  const sock = await rawMember(hub);
  await srv.serviceClient(hub).sendToUser(sock.userId, "hello raw", { contentType: "text/plain" });
  const f = await sock.waitFrame();
  assert.equal(f.isBinary, false);
  assert.equal(f.text, "hello raw");
});

test("row 31: REST application/json reaches a raw client as a text frame holding the JSON text", T, async () => {
  const hub = uniqueHub();
  const sock = await rawMember(hub);
  const sc = srv.serviceClient(hub);
  await sc.sendToUser(sock.userId, { a: 1, b: ["x"] });
  await sc.sendToUser(sock.userId, "Hello"); // a JSON string: arrives with its quotes
  await waitUntil(() => sock.frames.length >= 2, { what: "two frames" });
  assert.equal(sock.frames[0].isBinary, false);
  assert.deepEqual(JSON.parse(sock.frames[0].text), { a: 1, b: ["x"] });
  assert.equal(sock.frames[1].isBinary, false);
  assert.equal(sock.frames[1].text, '"Hello"');
});

test("row 31: REST application/octet-stream reaches a raw client as a binary frame", T, async () => {
  const hub = uniqueHub();
  const sock = await rawMember(hub);
  const bytes = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x7f]);
  await srv.serviceClient(hub).sendToAll(new Uint8Array(bytes));
  const f = await sock.waitFrame();
  assert.equal(f.isBinary, true);
  assert.deepEqual(f.data, bytes);
});

test("row 31: group messages from JSON clients keep their kind for raw members", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sock = await rawMember(hub, { groups: [group] });
  const sender = await srv.newClient(hub, { userId: "js", roles: ["webpubsub.sendToGroup"] }, { protocol: "json" });
  await sender.client.sendToGroup(group, "text data", "text");
  await sender.client.sendToGroup(group, { j: true }, "json");
  await sender.client.sendToGroup(group, Uint8Array.from([1, 2, 3]).buffer, "binary");
  await waitUntil(() => sock.frames.length >= 3, { what: "three frames on the raw member" });
  assert.deepEqual(
    sock.frames.map((f) => [f.isBinary, f.isBinary ? [...f.data] : f.text]),
    [
      [false, "text data"],
      [false, '{"j":true}'],
      [true, [1, 2, 3]],
    ],
  );
});

test("row 31: raw clients get no connected frame and no JSON envelope", T, async () => {
  const hub = uniqueHub();
  const sock = await rawMember(hub);
  await srv.serviceClient(hub).sendToAll("first", { contentType: "text/plain" });
  const f = await sock.waitFrame();
  assert.equal(f.text, "first", `first frame was ${f.text}`);
});

test("row 32: a frame over 1 MiB from a JSON client closes the connection with 1009", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "big", roles: ["webpubsub.sendToGroup"] });
  const data = "x".repeat(MiB + 1024);
  sock.send(JSON.stringify({ type: "sendToGroup", group: "g", dataType: "text", data })).catch(() => {});
  const closed = await sock.waitClose(15000);
  assert.equal(closed.code, 1009, `close code ${closed.code} (${closed.reason})`);
});

test("row 32: a frame over 1 MiB from a raw client closes the connection with 1009", T, async () => {
  const hub = uniqueHub();
  const sock = await rawMember(hub);
  sock.send(Buffer.alloc(MiB + 1024, 7)).catch(() => {});
  const closed = await sock.waitClose(15000);
  assert.equal(closed.code, 1009, `close code ${closed.code} (${closed.reason})`);
});

test("row 32: a frame just under 1 MB is accepted and delivered", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sender = await srv.rawClient(hub, { userId: "almost", roles: ["webpubsub.sendToGroup"] });
  const receiver = await srv.rawClient(hub, { userId: "rcv", groups: [group] });
  const data = "y".repeat(900 * 1000);
  await sender.sendJson({ type: "sendToGroup", group, dataType: "text", data, ackId: 1 });
  const ack = await sender.waitAck(1, 15000);
  assert.equal(ack.success, true, JSON.stringify(ack));
  const m = await receiver.waitJson((x) => x.type === "message", 15000);
  assert.equal(m.data.length, data.length);
  assert.ok(sender.isOpen);
  await syncRaw(srv, hub, sender);
});

test("row 32: a message of exactly 1 MiB is accepted", T, async () => {
  const hub = uniqueHub();
  const sender = await srv.rawClient(hub, { userId: "edge", roles: ["webpubsub.sendToGroup"] });
  const head = JSON.stringify({ type: "sendToGroup", group: "edge-g", dataType: "text", ackId: 1, data: "" });
  const json = head.replace('"data":""', `"data":"${"e".repeat(MiB - head.length)}"`);
  assert.equal(Buffer.byteLength(json), MiB);
  await sender.send(json);
  const ack = await sender.waitAck(1, 15000);
  assert.equal(ack.success, true, JSON.stringify(ack));
});

test("row 32: a message over 1 MiB sent as two fragments closes with 1009", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "frag", roles: ["webpubsub.sendToGroup"] });
  const json = JSON.stringify({ type: "sendToGroup", group: "g", dataType: "text", data: "z".repeat(MiB + 1024) });
  const half = Math.floor(json.length / 2);
  // ws sends continuation frames when fin is false on the first part.
  sock.ws.send(json.slice(0, half), { fin: false });
  sock.ws.send(json.slice(half), { fin: true }, () => {});
  const closed = await sock.waitClose(15000);
  assert.equal(closed.code, 1009, `close code ${closed.code} (${closed.reason})`);
});

test("row 31: a JSON subprotocol client and a raw client in one hub both get a REST broadcast", T, async () => {
  const hub = uniqueHub();
  const raw = await rawMember(hub);
  const json = await srv.rawClient(hub, { userId: "jsonc" }, JSON_PROTOCOL);
  await srv.serviceClient(hub).sendToAll("both", { contentType: "text/plain" });
  assert.equal((await raw.waitFrame()).text, "both");
  const m = await json.waitJson((x) => x.type === "message");
  assert.equal(m.from, "server");
  assert.equal(m.dataType, "text");
  assert.equal(m.data, "both");
});

test("row 78: a WebSocket ping control frame is answered with a pong carrying the same payload", T, async () => {
  const hub = uniqueHub();
  for (const protocol of [undefined, JSON_PROTOCOL]) {
    const sock = protocol ? await srv.rawClient(hub, { userId: "ctl" }, protocol) : await rawMember(hub);
    const pong = new Promise((resolve) => sock.ws.once("pong", (data) => resolve(Buffer.from(data))));
    sock.ws.ping(Buffer.from("are-you-there"));
    const got = await withDeadline(pong, 10000, "a pong control frame");
    assert.equal(got.toString(), "are-you-there");
    assert.ok(sock.isOpen);
  }
});

test("row 78: the server pings idle clients; a client that answers stays, a silent one is dropped", { timeout: 60000 }, async () => {
  const fast = await startServer({ args: ["--keepalive-seconds", "1", "--idle-timeout-seconds", "5"] });
  try {
    const hub = uniqueHub();
    const sock = await fast.rawClient(hub, { userId: "idle-but-alive" }, JSON_PROTOCOL);
    let pings = 0;
    sock.ws.on("ping", () => (pings += 1)); // ws answers every ping with a pong by itself
    const { token } = await fast.serviceClient(hub).getClientAccessToken({ userId: "silent" });
    const silent = await TcpWsClient.open(fast.port, `/client/hubs/${hub}?access_token=${token}`, { protocol: JSON_PROTOCOL });
    // The silent client connected after the answering one: once it has been dropped for
    // idleness, the answering one has been idle (bar its pongs) for longer.
    await withDeadline(silent.ended, 20000, "the silent client to be dropped");
    const seen = pings;
    await waitUntil(() => pings > seen, { timeout: 10000, what: "one more server ping after the silent client was dropped" });
    assert.ok(pings >= 2, `pings: ${pings}`);
    assert.ok(sock.isOpen, "a client that answers pings is kept");
    assert.equal(await fast.serviceClient(hub).connectionExists(sock.connectionId), true);
    assert.ok(silent.frames.some((f) => f.opcode === 9), "the silent client was pinged before being dropped");
  } finally {
    await fast.stop();
  }
});
