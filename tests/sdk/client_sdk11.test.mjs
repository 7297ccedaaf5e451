// Client SDK 1.1 (@azure/web-pubsub-client 1.1.0, @azure/web-pubsub-express 1.1.0) against a real
// `hubcast serve`: invokeEvent (answer, handler errors, timeout, cancellation), group streams
// (openGroupStream / onGroupStream: 10,000 messages to 50 members in order across a cut of every
// socket; the stream rules on the wire), group state (snapshot and updates as members come and
// go), azure.webpubsub.gp.joined / gp.left events, and messages of unknown types. Frames that no
// SDK method sends (group state) are written with the SDK's own protocol object, so their shape
// is the SDK's. Skipped when the suite runs against SDK 1.0 (lib/sdk.mjs).

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { startProxy } from "./lib/proxy.mjs";
import { InvocationError, SDK_1_1, WebPubSubClient, WebPubSubJsonReliableProtocol } from "./lib/sdk.mjs";
import { JSON_PROTOCOL, RELIABLE_PROTOCOL, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { startUpstream } from "./lib/upstream.mjs";
import { waitUntil, withDeadline } from "./lib/wait.mjs";

const T = { timeout: 60000, skip: !SDK_1_1 && "needs @azure/web-pubsub-client 1.1" };
const ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
const HUB_INVOKE = uniqueHub("inv");
const HUB_GROUPS = uniqueHub("gp"); // handler subscribed to joined/left
const HUB_PLAIN = uniqueHub("nogp"); // handler without joined/left
const HUB_ASK_ONLY = uniqueHub("askonly"); // a handler for event "ask" only

let srv;
let up;

before(async () => {
  if (!SDK_1_1) return;
  up = await startUpstream({ name: "sdk11-upstream" });
  srv = await startServer({
    args: [
      "--event-handler", `${HUB_INVOKE}=${up.template}`,
      "--event-handler", `${HUB_GROUPS}=${up.template};system=connect,connected,disconnected,joined,left`,
      "--event-handler", `${HUB_PLAIN}=${up.template}`,
      "--event-handler", `${HUB_ASK_ONLY}=${up.template};user=ask`,
      "--upstream-timeout-seconds", "2",
      "--log-level", "info",
    ],
  });
});
afterEach(async () => srv?.closeClients());
after(async () => {
  if (srv) await srv.stop();
  if (up) await up.close();
});

// --- invokeEvent ------------------------------------------------------------------------------

test("invokeEvent: the event handler's answer is the response, with its data type", T, async () => {
  const h = mountedHandler(HUB_INVOKE);
  h.script.handleUserEvent = (req, res) => {
    switch (req.context.eventName) {
      case "json":
        return res.success(JSON.stringify({ echo: req.data, user: req.context.userId }), "json");
      case "text":
        return res.success(String(req.data).toUpperCase(), "text");
      case "binary":
        return res.success(Buffer.concat([Buffer.from(req.data), Buffer.from([255])]), "binary");
      default:
        return res.success();
    }
  };
  const { client } = await srv.newClient(HUB_INVOKE, { userId: "asker" });
  const json = await client.invokeEvent("json", { q: [1, 2] }, "json");
  assert.equal(json.dataType, "json");
  assert.deepEqual(json.data, { echo: { q: [1, 2] }, user: "asker" });
  const text = await client.invokeEvent("text", "abc", "text");
  assert.equal(text.dataType, "text");
  assert.equal(text.data, "ABC");
  const binary = await client.invokeEvent("binary", new Uint8Array([1, 2]).buffer, "binary");
  assert.equal(binary.dataType, "binary");
  assert.deepEqual([...new Uint8Array(binary.data)], [1, 2, 255]);
  const empty = await client.invokeEvent("nothing", "x", "text");
  assert.equal(empty.dataType, undefined, "an empty answer is a success without data");
  // The handler saw ordinary user events.
  const seen = h.events("user").map((e) => e.http.headers["ce-type"]).slice(0, 4);
  assert.deepEqual(seen, ["azure.webpubsub.user.json", "azure.webpubsub.user.text", "azure.webpubsub.user.binary", "azure.webpubsub.user.nothing"]);
});

test("invokeEvent: a handler's refusal, a missing handler and a timeout are failed responses with an error name", T, async () => {
  const h = up.handler(HUB_ASK_ONLY);
  h.script.handleUserEvent = (req, res) => {
    if (req.data === "slow") return; // never answers: the service's timeout (2 s here) ends it
    return res.fail(400, "not a question");
  };
  const { client } = await srv.newClient(HUB_ASK_ONLY, { userId: "u" });
  const refusal = await client.invokeEvent("ask", "x", "text").then(() => null, (e) => e);
  assert.ok(refusal instanceof InvocationError, String(refusal));
  assert.equal(refusal.errorDetail.name, "BadRequest");
  assert.match(refusal.errorDetail.message, /400: not a question/);
  const unhandled = await client.invokeEvent("other", "x", "text").then(() => null, (e) => e);
  assert.equal(unhandled.errorDetail.name, "InternalServerError");
  assert.match(unhandled.errorDetail.message, /No event handler/);
  const started = Date.now();
  const timeout = await client.invokeEvent("ask", "slow", "text").then(() => null, (e) => e);
  assert.equal(timeout.errorDetail.name, "Timeout");
  assert.ok(Date.now() - started >= 1500, "answered by the timeout, not at once");
});

test("invokeEvent: cancellation stops the wait; the late answer is dropped and the handler's state still applies", T, async () => {
  const hub = HUB_INVOKE;
  const sock = await srv.rawClient(hub, { userId: "canceller" }, JSON_PROTOCOL);
  let release;
  const gate = new Promise((r) => (release = r));
  const answered = [];
  const mounted = mountedHandler(hub);
  mounted.script.handleUserEvent = async (req, res) => {
    if (req.data === "wait") {
      await gate;
      res.setState("answered", "yes");
      answered.push(req.context.connectionId);
      return res.success("late", "text");
    }
    return res.success(`state:${req.context.states.answered ?? "none"}`, "text");
  };
  await sock.sendJson({ type: "invoke", invocationId: "c1", target: "event", event: "slowpoke", dataType: "text", data: "wait" });
  await sock.sendJson({ type: "cancelInvocation", invocationId: "c1" });
  await sock.roundTrip();
  release();
  await waitUntil(() => answered.length === 1, { what: "the handler to answer the cancelled invocation" });
  // Once an invocation sees the state the late answer set, that answer has been processed.
  let n = 0;
  await waitUntil(async () => {
    const id = `probe${++n}`;
    await sock.sendJson({ type: "invoke", invocationId: id, target: "event", event: "probe", dataType: "text", data: "?" });
    const r = await sock.waitJson((m) => m.type === "invokeResponse" && m.invocationId === id);
    return r.data === "state:yes";
  }, { what: "the cancelled invocation's answer to be processed" });
  const forCancelled = sock.jsons().filter((m) => m.type === "invokeResponse" && m.invocationId === "c1");
  assert.deepEqual(forCancelled, [], "no response for a cancelled invocation");

  // The SDK's own cancellation: abortSignal rejects at once and sends cancelInvocation.
  const { client } = await srv.newClient(hub, { userId: "sdk-cancel" });
  const controller = new AbortController();
  const pending = client.invokeEvent("slowpoke", "wait-forever", "text", { abortSignal: controller.signal });
  mounted.script.handleUserEvent = async (req, res) => {
    if (req.data === "wait-forever") {
      controller.abort();
      return res.success("too late", "text");
    }
    return res.success();
  };
  const err = await pending.then(() => null, (e) => e);
  assert.ok(err instanceof InvocationError, String(err));
  assert.match(err.message, /cancel/i);
});

test("invocations and streams are bounded per connection: 128 invocations in flight, 64 open streams; ids are unique", T, async () => {
  const mounted = mountedHandler(HUB_INVOKE);
  let release;
  const gate = new Promise((r) => (release = r));
  mounted.script.handleUserEvent = async (req, res) => {
    if (req.data === "hold") await gate;
    return res.success("ok", "text");
  };
  const sock = await srv.rawClient(HUB_INVOKE, { userId: "bounded", roles: ROLES }, JSON_PROTOCOL);
  const invoke = (id) => sock.sendJson({ type: "invoke", invocationId: id, target: "event", event: "hold", dataType: "text", data: "hold" });
  for (let i = 1; i <= 128; i++) await invoke(`i${i}`);
  await invoke("i1");
  const dup = await sock.waitJson((m) => m.type === "invokeResponse" && m.invocationId === "i1");
  assert.equal(dup.error.name, "BadRequest", "an id already waiting");
  await invoke("i129");
  const over = await sock.waitJson((m) => m.type === "invokeResponse" && m.invocationId === "i129");
  assert.equal(over.error.name, "TooManyRequests");
  release();
  await waitUntil(() => sock.jsons().filter((m) => m.type === "invokeResponse" && m.success).length === 128, { what: "the 128 answers" });

  for (let i = 1; i <= 65; i++) {
    await sock.sendJson({ type: "sendToGroup", group: "g", noEcho: false, stream: { streamId: `s${i}` } });
  }
  const refused = await sock.waitJson((m) => m.type === "streamClosed" && m.streamId === "s65");
  assert.equal(refused.error.name, "BadRequest");
  await waitUntil(() => sock.jsons().filter((m) => m.type === "streamAck").length === 64, { what: "64 open streams" });
});

// --- group streams ----------------------------------------------------------------------------

test("group stream: 10,000 messages from one client reach 50 members in order across a cut of every socket", { ...T, timeout: 300000 }, async () => {
  const hub = uniqueHub("stream");
  const group = uniqueName("live");
  const proxy = await startProxy(srv.port);
  const sc = srv.serviceClient(hub);
  const viaProxy = async (tokenOptions) =>
    (await sc.getClientAccessToken(tokenOptions)).url.replace(`:${srv.port}/`, `:${proxy.port}/`);
  const clients = [];
  try {
    const N = 10000;
    const members = [];
    for (let i = 0; i < 50; i++) {
      const tokenOptions = { userId: `m${i}`, groups: [group] };
      const client = new WebPubSubClient({ getClientAccessUrl: () => viaProxy(tokenOptions) });
      clients.push(client);
      const member = { data: [], done: null, error: null };
      member.done = new Promise((resolve) => {
        client.onGroupStream(async (stream) => {
          try {
            for await (const m of stream) member.data.push(m.data);
          } catch (err) {
            member.error = err;
          }
          resolve();
        });
      });
      members.push(member);
      await client.start();
    }
    const publisher = new WebPubSubClient({ getClientAccessUrl: () => viaProxy({ userId: "pub", roles: ROLES }) });
    clients.push(publisher);
    let connectedEvents = 0;
    publisher.on("connected", () => connectedEvents++);
    await publisher.start();
    const writer = await publisher.openGroupStream(group, { noEcho: true });
    for (let i = 1; i <= N; i++) {
      await writer.write(`m${i}`, "text");
      if (i === N / 2) assert.ok(proxy.cut("midstream") >= 51, "every client's socket was cut");
    }
    await writer.end();
    await withDeadline(Promise.all(members.map((m) => m.done)), 240000, "every member's stream to end");
    const expected = Array.from({ length: N }, (_, k) => `m${k + 1}`);
    for (const [i, m] of members.entries()) {
      assert.equal(m.error, null, `member ${i}: ${m.error}`);
      assert.equal(m.data.length, N, `member ${i} got ${m.data.length} messages`);
      assert.deepEqual(m.data, expected, `member ${i} in order, none twice`);
    }
    assert.equal(connectedEvents, 1, "the publisher recovered its session (no new connection)");
    assert.ok(proxy.stats.accepted >= 102, "every client came back through the proxy");
  } finally {
    for (const c of clients) c.stop();
    await proxy.close();
  }
});

test("group stream on the wire: start ack, order checks, keep-alive, user error, idle timeout, unknown and forbidden streams", T, async () => {
  const hub = uniqueHub("wire");
  const group = uniqueName("g");
  const pub = await srv.rawClient(hub, { userId: "pub", roles: ROLES }, JSON_PROTOCOL);
  const member = await srv.rawClient(hub, { userId: "mem", groups: [group] }, RELIABLE_PROTOCOL);
  const closed = (id) => pub.waitJson((m) => m.type === "streamClosed" && m.streamId === id);

  await pub.sendJson({ type: "sendToGroup", group, noEcho: false, stream: { streamId: "s1" } });
  assert.deepEqual(await pub.waitJson((m) => m.type === "streamAck"), { type: "streamAck", streamId: "s1", expectedSequenceId: 1 });
  for (const n of [1, 2, 2, 1]) {
    await pub.sendJson({ type: "streamData", streamId: "s1", streamSequenceId: n, dataType: "text", data: `c${n}` });
  }
  await pub.sendJson({ type: "streamData", streamId: "s1", streamSequenceId: 4, dataType: "text", data: "c4" });
  const nack = await pub.waitJson((m) => m.type === "streamNack");
  assert.equal(nack.name, "InvalidSequenceId");
  assert.equal(nack.expectedSequenceId, 3);
  await pub.sendJson({ type: "streamData", streamId: "s1" }); // keep-alive
  await pub.sendJson({ type: "streamData", streamId: "s1", streamSequenceId: 3, dataType: "json", data: { n: 3 } });
  await pub.sendJson({ type: "streamEnd", streamId: "s1", error: { message: "gave up", userErrorCode: "E42" } });
  assert.equal((await closed("s1")).error, undefined, "the publisher's own end closes without an error");
  await waitUntil(() => member.messages().length === 4, { what: "the member's 4 stream messages" });
  const got = member.messages();
  assert.deepEqual(got.map((m) => m.data), ["c1", "c2", { n: 3 }, ""]);
  assert.deepEqual(got.map((m) => m.stream.streamSequenceId), [1, 2, 3, 4]);
  assert.deepEqual(got.map((m) => m.stream.endOfStream), [false, false, false, true]);
  assert.deepEqual(got[3].stream.error, { name: "UserError", message: "gave up", userErrorCode: "E42" });
  assert.ok(got.every((m) => m.fromUserId === "pub" && m.sequenceId > 0), "ordinary numbered group messages");
  // Acks: the publisher was told where the stream stood (monotonic, at most the next id).
  const acks = pub.jsons().filter((m) => m.type === "streamAck").map((m) => m.expectedSequenceId);
  assert.deepEqual(acks, [...acks].sort((a, b) => a - b));
  assert.ok(acks.at(-1) <= 4);

  // Idle timeout: the service ends a stream with no message for idleTimeoutMs.
  await pub.sendJson({ type: "sendToGroup", group, noEcho: false, stream: { streamId: "idle", idleTimeoutMs: 1000 } });
  await pub.waitJson((m) => m.type === "streamAck" && m.streamId === "idle");
  assert.equal((await closed("idle")).error.name, "IdleTimeout");
  const idleEnd = await member.waitJson((m) => m.type === "message" && m.stream?.streamId === "idle");
  assert.equal(idleEnd.stream.endOfStream, true);
  assert.equal(idleEnd.stream.error.name, "IdleTimeout");

  // Unknown streams, forbidden groups, bad starts.
  await pub.sendJson({ type: "streamData", streamId: "nope", streamSequenceId: 1, dataType: "text", data: "x" });
  assert.equal((await closed("nope")).error.name, "StreamNotFound");
  const stranger = await srv.rawClient(hub, { userId: "nobody" }, JSON_PROTOCOL);
  await stranger.sendJson({ type: "sendToGroup", group, noEcho: false, stream: { streamId: "f" } });
  assert.equal((await stranger.waitJson((m) => m.type === "streamClosed")).error.name, "Forbidden");
  await pub.sendJson({ type: "sendToGroup", group, noEcho: false, stream: { streamId: "bad", idleTimeoutMs: 1 } });
  assert.equal((await closed("bad")).error.name, "BadRequest");
});

test("group stream: a publisher's connection that ends ends its streams for the group", T, async () => {
  const hub = uniqueHub("pubgone");
  const group = uniqueName("g");
  const member = await srv.rawClient(hub, { userId: "mem", groups: [group] }, JSON_PROTOCOL);
  const pub = await srv.rawClient(hub, { userId: "pub", roles: ROLES }, JSON_PROTOCOL);
  await pub.sendJson({ type: "sendToGroup", group, noEcho: false, stream: { streamId: "s" } });
  await pub.waitJson((m) => m.type === "streamAck");
  await pub.sendJson({ type: "streamData", streamId: "s", streamSequenceId: 1, dataType: "text", data: "one" });
  await member.waitJson((m) => m.type === "message");
  pub.close();
  const end = await member.waitJson((m) => m.type === "message" && m.stream.endOfStream);
  assert.equal(end.stream.error.name, "ConnectionClosed");
  assert.equal(end.stream.streamSequenceId, 2);

  // Closed by the app server (REST): the service ends the stream itself.
  const pub2 = await srv.rawClient(hub, { userId: "pub2", roles: ROLES }, JSON_PROTOCOL);
  await pub2.sendJson({ type: "sendToGroup", group, noEcho: false, stream: { streamId: "s2" } });
  await pub2.waitJson((m) => m.type === "streamAck");
  await srv.serviceClient(hub).closeConnection(pub2.connectionId, { reason: "bye" });
  const end2 = await member.waitJson((m) => m.type === "message" && m.stream.streamId === "s2" && m.stream.endOfStream);
  assert.equal(end2.stream.error.name, "ConnectionClosed");
  assert.equal(end2.stream.streamSequenceId, 1);
});

// --- group state ------------------------------------------------------------------------------

test("group state: a snapshot on subscribe, then updates as members set state, leave and close", T, async () => {
  const hub = uniqueHub("state");
  const group = uniqueName("room");
  const protocol = WebPubSubJsonReliableProtocol();
  const frame = (message) => protocol.writeMessage(message);
  const a = await srv.rawClient(hub, { userId: "alice", roles: ROLES }, RELIABLE_PROTOCOL);
  const b = await srv.rawClient(hub, { userId: "bob", roles: ROLES }, RELIABLE_PROTOCOL);
  const watcher = await srv.rawClient(hub, { userId: "watcher", roles: ROLES }, RELIABLE_PROTOCOL);
  const ack = async (sock, message) => {
    await sock.send(frame(message));
    return sock.waitAck(message.ackId);
  };
  assert.equal((await ack(a, { kind: "joinGroup", group, ackId: 1 })).success, true);
  // Only members set state.
  assert.equal((await ack(b, { kind: "setGroupState", group, ackId: 1, state: { mood: "x" } })).error.name, "NotFound");
  assert.equal((await ack(a, { kind: "setGroupState", group, ackId: 2, state: { mood: "busy", seat: "3" } })).success, true);

  // Subscribing needs membership or the right to join: watcher has the role, so it may.
  assert.equal((await ack(watcher, { kind: "subscribeGroupState", group, ackId: 1 })).success, true);
  const snapshot = watcher.jsons().find((m) => m.type === "groupStateSnapshot");
  assert.ok(snapshot, "the snapshot arrives before the ack");
  assert.equal(snapshot.group, group);
  assert.equal(snapshot.items.length, 1);
  assert.equal(snapshot.items[0].connectionId, a.connectionId);
  assert.equal(snapshot.items[0].userId, "alice");
  assert.deepEqual(snapshot.items[0].state, { mood: "busy", seat: "3" });
  assert.ok(Math.abs(snapshot.items[0].updatedAt - Date.now()) < 60000);
  // The SDK's own parser reads it.
  assert.equal(protocol.parseMessages(JSON.stringify(snapshot)).kind, "groupStateSnapshot");

  const updates = () => watcher.jsons().filter((m) => m.type === "groupStateUpdate");
  const nextUpdate = (n) => waitUntil(() => updates().length >= n && updates()[n - 1], { what: `update ${n}` });
  // Bob comes: joins and announces himself with an empty state.
  await ack(b, { kind: "joinGroup", group, ackId: 2 });
  await ack(b, { kind: "setGroupState", group, ackId: 3, state: {} });
  let u = await nextUpdate(1);
  assert.deepEqual(u.items.map((i) => [i.userId, i.state]), [["bob", {}]]);
  // Alice changes her state, then leaves: an item without state.
  await ack(a, { kind: "setGroupState", group, ackId: 3, state: { mood: "away" } });
  u = await nextUpdate(2);
  assert.deepEqual(u.items[0].state, { mood: "away" });
  await ack(a, { kind: "leaveGroup", group, ackId: 4 });
  u = await nextUpdate(3);
  assert.equal(u.items[0].connectionId, a.connectionId);
  assert.equal(u.items[0].state, undefined);
  // Bob goes away: his connection closes.
  b.close();
  u = await nextUpdate(4);
  assert.equal(u.items[0].userId, "bob");
  assert.equal(u.items[0].state, undefined);

  // Limits and rules.
  const c = await srv.rawClient(hub, { userId: "carol", groups: [group] }, RELIABLE_PROTOCOL);
  const big = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"]));
  assert.equal((await ack(c, { kind: "setGroupState", group, ackId: 1, state: big })).error.name, "BadRequest");
  const stranger = await srv.rawClient(hub, { userId: "stranger" }, RELIABLE_PROTOCOL);
  assert.equal((await ack(stranger, { kind: "subscribeGroupState", group, ackId: 1 })).error.name, "Forbidden");
  assert.equal((await ack(watcher, { kind: "unsubscribeGroupState", group, ackId: 2 })).success, true);
  await ack(c, { kind: "setGroupState", group, ackId: 2, state: { here: "1" } });
  await watcher.roundTrip();
  assert.equal(updates().length, 4, "no updates after unsubscribing");
});

// --- group events -----------------------------------------------------------------------------

test("gp.joined / gp.left: one event per membership change, through the client, REST, the token and a connect answer", T, async () => {
  const h = up.handler(HUB_GROUPS);
  const plain = up.handler(HUB_PLAIN);
  h.script.handleConnect = (req, res) => res.success({ groups: ["from-connect"] });
  const sc = srv.serviceClient(HUB_GROUPS);
  const c = await srv.rawClient(HUB_GROUPS, { userId: "gp", roles: ROLES, groups: ["from-token"] }, JSON_PROTOCOL);
  const id = c.connectionId;
  await c.sendJson({ type: "joinGroup", group: "by-client", ackId: 1 });
  await c.waitAck(1);
  await sc.group("by-rest").addConnection(id);
  await sc.group("by-user").addUser("gp");
  await c.sendJson({ type: "leaveGroup", group: "by-client", ackId: 2 });
  await c.waitAck(2);
  await sc.group("by-rest").removeConnection(id);
  c.close();
  await h.wait("disconnected", id);
  const count = (kind) => h.events(kind, id).map((e) => e.request.group).sort();
  await waitUntil(() => count("left").length === 4, { what: "4 gp.left events" });
  // The connect answer's groups replace the token's (emulator rule), so "from-token" is not joined.
  assert.deepEqual(count("joined"), ["by-client", "by-rest", "by-user", "from-connect"]);
  assert.deepEqual(count("left"), ["by-client", "by-rest", "by-user", "from-connect"]);
  const sample = h.events("joined", id)[0];
  assert.equal(sample.http.headers["ce-type"], "azure.webpubsub.gp.joined");
  assert.equal(sample.http.headers["ce-eventname"], "joined");
  assert.equal(sample.http.headers["ce-physicalconnectionid"], undefined, "MQTT only");
  assert.equal(sample.request.context.clientProtocol, "default");
  assert.equal(sample.request.context.userId, "gp");
  assert.equal(h.events("left", id)[0].http.headers["ce-type"], "azure.webpubsub.gp.left");

  // A handler that did not ask for them gets none.
  const q = await srv.rawClient(HUB_PLAIN, { userId: "q", roles: ROLES }, JSON_PROTOCOL);
  await q.sendJson({ type: "joinGroup", group: "g", ackId: 1 });
  await q.waitAck(1);
  q.close();
  await plain.wait("disconnected", q.connectionId);
  assert.equal(plain.events("joined").length + plain.events("left").length, 0);
});

// --- unknown messages -------------------------------------------------------------------------

test("unknown message types: an error ack with an ackId, else ignored with a log line", T, async () => {
  const hub = uniqueHub("unknown");
  const sock = await srv.rawClient(hub, { roles: ROLES }, RELIABLE_PROTOCOL);
  await sock.sendJson({ type: "teleport", ackId: 5, where: "moon" });
  const refused = await sock.waitAck(5);
  assert.equal(refused.success, false);
  assert.equal(refused.error.name, "BadRequest");
  await sock.sendJson({ type: "teleportQuietly" });
  await sock.sendJson({ type: "invokeResponse", invocationId: "x", success: true }); // service-bound invocations do not exist
  await sock.roundTrip();
  assert.ok(sock.isOpen);
  await waitUntil(() => /ignored a 'teleportQuietly' message/.test(srv.output()), { what: "the log line" });
});

// The handler of a hub, mounted once (a second mount of the same path would be refused).
const mountedHandlers = new Map();
function mountedHandler(hub) {
  if (!mountedHandlers.has(hub)) mountedHandlers.set(hub, up.handler(hub));
  return mountedHandlers.get(hub);
}
