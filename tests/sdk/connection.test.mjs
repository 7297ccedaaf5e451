// PROTOCOL.md section 8, rows 1-11: connection strings, client handshake, tokens, subprotocols.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { WebPubSubJsonProtocol } from "./lib/sdk.mjs";

import { syncRaw } from "./lib/checks.mjs";
import { clientToken } from "./lib/jwt.mjs";
import { tryUpgrade } from "./lib/raw.mjs";
import {
  JSON_PROTOCOL,
  RELIABLE_PROTOCOL,
  newAccessKey,
  startServer,
  uniqueHub,
  uniqueName,
} from "./lib/server.mjs";
import { sleep, waitUntil } from "./lib/wait.mjs";

const T = { timeout: 30000 };
let srv;
const primary = newAccessKey();
const secondary = newAccessKey();

before(async () => {
  srv = await startServer({ keys: [primary, secondary] });
});
afterEach(async () => srv.closeClients());
after(async () => srv && srv.stop());

const wsBase = () => `ws://127.0.0.1:${srv.port}`;
const tokenFor = (hub, opts = {}) => clientToken(srv.endpoint, hub, opts.key ?? primary, opts);

async function expectUpgrade(url, options = {}) {
  const r = await tryUpgrade(url, options);
  if (!r.socket) assert.fail(`expected the upgrade to succeed, got HTTP ${r.status}: ${r.body}`);
  return r.socket;
}

async function expectRefused(url, status, options = {}) {
  const r = await tryUpgrade(url, options);
  if (r.socket) {
    const first = await r.socket.waitFrame(() => true, 2000).catch(() => undefined);
    r.socket.terminate();
    assert.fail(`expected HTTP ${status}, but the upgrade succeeded (first frame: ${first && first.text})`);
  }
  assert.equal(r.status, status, `handshake status (body: ${r.body})`);
}

async function connectedFrame(sock) {
  const m = await sock.waitJson(() => true, 10000);
  assert.equal(m.type, "system", `first frame: ${JSON.stringify(m)}`);
  assert.equal(m.event, "connected", `first frame: ${JSON.stringify(m)}`);
  return m;
}

test("row 1: the printed connection string is Endpoint=http://127.0.0.1:PORT;AccessKey=KEY;Version=1.0; and the SDK uses it", T, async () => {
  const re = new RegExp(`Endpoint=http://127\\.0\\.0\\.1:${srv.port};AccessKey=([^;\\s]+);Version=1\\.0;`);
  const printed = await waitUntil(() => re.exec(srv.stdout() + srv.stderr()), {
    timeout: 5000,
    what: `a connection string matching ${re} in hubcast's output`,
  }).catch((e) => assert.fail(`${e.message}\n${srv.output()}`));
  assert.ok([primary, secondary].includes(printed[1]), "the printed AccessKey is one of --access-key");
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub, { connectionString: printed[0] });
  const tok = await sc.getClientAccessToken({ userId: "u1" });
  assert.ok(tok.url.startsWith(`ws://127.0.0.1:${srv.port}/client/hubs/${hub}?access_token=`), tok.url);
  assert.equal(await sc.connectionExists("no-such-connection"), false);
  const sock = await expectUpgrade(tok.url, { protocols: JSON_PROTOCOL });
  const connected = await connectedFrame(sock);
  assert.equal(await sc.connectionExists(connected.connectionId), true);
  sock.terminate();
});

test("row 1: Endpoint without port plus Port=N works for REST and client connections", T, async () => {
  const hub = uniqueHub();
  const cs = `Endpoint=http://127.0.0.1;Port=${srv.port};AccessKey=${primary};Version=1.0;`;
  const sc = srv.serviceClient(hub, { connectionString: cs });
  const tok = await sc.getClientAccessToken({ userId: "port-user" });
  assert.ok(tok.url.startsWith(`ws://127.0.0.1:${srv.port}/client/hubs/${hub}`), tok.url);
  const sock = await srv.raw(tok.url, { protocols: JSON_PROTOCOL });
  const connected = await connectedFrame(sock);
  assert.equal(connected.userId, "port-user");
  assert.equal(await sc.userExists("port-user"), true);
});

test("row 2: SDK client connects with access_token in the query and gets a connection id", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "alice" });
  assert.equal(typeof c.connectionId, "string");
  assert.ok(c.connectionId.length > 0);
  assert.equal(await srv.serviceClient(hub).connectionExists(c.connectionId), true);
  const ev = c.rec.all("connected")[0];
  assert.equal(ev.userId, "alice");
});

test("row 2: a garbage or wrongly signed access_token is refused with HTTP 401", T, async () => {
  const hub = uniqueHub();
  await expectRefused(`${wsBase()}/client/hubs/${hub}?access_token=not.a.jwt`, 401, { protocols: JSON_PROTOCOL });
  const forged = tokenFor(hub, { key: newAccessKey(), userId: "mallory" });
  await expectRefused(`${wsBase()}/client/hubs/${hub}?access_token=${forged}`, 401, { protocols: JSON_PROTOCOL });
  // The same request with a good token upgrades.
  const good = tokenFor(hub, { userId: "bob" });
  const sock = await expectUpgrade(`${wsBase()}/client/hubs/${hub}?access_token=${good}`, { protocols: JSON_PROTOCOL });
  assert.equal((await connectedFrame(sock)).userId, "bob");
  sock.terminate();
});

test("row 2: HS384 and HS512 client tokens are accepted", T, async () => {
  const hub = uniqueHub();
  for (const alg of ["HS384", "HS512"]) {
    const tok = tokenFor(hub, { userId: `u-${alg}`, alg });
    const sock = await expectUpgrade(`${wsBase()}/client/hubs/${hub}?access_token=${tok}`, { protocols: JSON_PROTOCOL });
    assert.equal((await connectedFrame(sock)).userId, `u-${alg}`);
    sock.terminate();
  }
});

test("row 3: Authorization: Bearer header is accepted on /client/hubs/{hub}", T, async () => {
  const hub = uniqueHub();
  const tok = tokenFor(hub, { userId: "bearer-user" });
  const sock = await expectUpgrade(`${wsBase()}/client/hubs/${hub}`, {
    protocols: JSON_PROTOCOL,
    headers: { Authorization: `Bearer ${tok}` },
  });
  const connected = await connectedFrame(sock);
  assert.equal(connected.userId, "bearer-user");
  assert.equal(await srv.serviceClient(hub).connectionExists(connected.connectionId), true);
  sock.terminate();
});

test("row 4: /client/?hub={hub} connects to that hub", T, async () => {
  const hub = uniqueHub();
  const { token } = await srv.serviceClient(hub).getClientAccessToken({ userId: "alt-user" });
  const sock = await expectUpgrade(`${wsBase()}/client/?hub=${hub}&access_token=${token}`, { protocols: JSON_PROTOCOL });
  const connected = await connectedFrame(sock);
  assert.equal(connected.userId, "alt-user");
  assert.equal(await srv.serviceClient(hub).connectionExists(connected.connectionId), true);
  await srv.serviceClient(hub).sendToUser("alt-user", { via: "alt" });
  const msg = await sock.waitJson((m) => m.type === "message");
  assert.deepEqual(msg.data, { via: "alt" });
  sock.terminate();
});

test("row 5: sub becomes the userId", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "sub-user" });
  assert.equal(sock.connectedMessage.userId, "sub-user");
  assert.equal(await srv.serviceClient(hub).userExists("sub-user"), true);
});

test("row 5: a role claim given as a single string grants that role", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const tok = tokenFor(hub, { userId: "role-str", roles: "webpubsub.joinLeaveGroup" });
  const sock = await expectUpgrade(`${wsBase()}/client/hubs/${hub}?access_token=${tok}`, { protocols: JSON_PROTOCOL });
  await connectedFrame(sock);
  await sock.sendJson({ type: "joinGroup", group, ackId: 1 });
  const ack = await sock.waitAck(1);
  assert.equal(ack.success, true, JSON.stringify(ack));
  sock.terminate();
});

test("row 5: a role claim given as an array grants every role in it", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "role-arr", roles: ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"] }, { protocol: "json" });
  await c.client.joinGroup(group);
  await c.client.sendToGroup(group, { hi: 1 }, "json");
  const m = await c.rec.wait("group", (x) => x.group === group);
  assert.deepEqual(m.data, { hi: 1 });
});

test("row 5: webpubsub.group as a string auto-joins that group", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const tok = tokenFor(hub, { userId: "grp-str", groups: group });
  const sock = await expectUpgrade(`${wsBase()}/client/hubs/${hub}?access_token=${tok}`, { protocols: JSON_PROTOCOL });
  await connectedFrame(sock);
  assert.equal(await srv.serviceClient(hub).groupExists(group), true);
  await srv.serviceClient(hub).group(group).sendToAll({ g: 1 });
  const m = await sock.waitJson((x) => x.type === "message");
  assert.deepEqual(m.data, { g: 1 });
  sock.terminate();
});

test("row 5: webpubsub.group as an array auto-joins every group (SDK groups option)", T, async () => {
  const hub = uniqueHub();
  const g1 = uniqueName("g");
  const g2 = uniqueName("g");
  const c = await srv.newClient(hub, { userId: "grp-arr", groups: [g1, g2] }, { protocol: "json" });
  const sc = srv.serviceClient(hub);
  assert.equal(await sc.groupExists(g1), true);
  assert.equal(await sc.groupExists(g2), true);
  await sc.group(g2).sendToAll("to-g2", { contentType: "text/plain" });
  const m = await c.rec.wait("message", (x) => x.data === "to-g2");
  assert.equal(m.dataType, "text");
});

test("row 5: an expired token is refused with 401", T, async () => {
  const hub = uniqueHub();
  const now = Math.floor(Date.now() / 1000);
  const tok = tokenFor(hub, { userId: "late", exp: now - 600 });
  await expectRefused(`${wsBase()}/client/hubs/${hub}?access_token=${tok}`, 401, { protocols: JSON_PROTOCOL });
});

test("row 5: exp is checked only at connect: a live connection outlives its token", T, async () => {
  const hub = uniqueHub();
  const exp = Math.floor(Date.now() / 1000) + 2;
  const tok = tokenFor(hub, { userId: "short", exp });
  const sock = await expectUpgrade(`${wsBase()}/client/hubs/${hub}?access_token=${tok}`, { protocols: JSON_PROTOCOL });
  const connected = await connectedFrame(sock);
  sock.connectionId = connected.connectionId;
  // Let the token expire (plus a margin for clock skew handling) before checking.
  while (Date.now() / 1000 < exp + 2) await sleep(250);
  assert.equal(await srv.serviceClient(hub).connectionExists(connected.connectionId), true);
  await syncRaw(srv, hub, sock);
  assert.ok(sock.isOpen);
  sock.terminate();
});

test("row 6: SDK-minted audience and its case, trailing-slash and host variants are accepted", T, async () => {
  const hub = uniqueHub("AudHub");
  const path = `/client/hubs/${hub}`;
  const variants = [
    `${srv.endpoint}${path}`,
    `${srv.endpoint}${path}/`,
    `${srv.endpoint.toUpperCase()}${path.toUpperCase()}`,
    `http://127.0.0.1:${srv.port}${path.toLowerCase()}`,
    `http://localhost:${srv.port}${path}`,
    `https://example.webpubsub.azure.com${path}`,
  ];
  for (const aud of variants) {
    const tok = tokenFor(hub, { userId: "aud-user", aud });
    const r = await tryUpgrade(`${wsBase()}/client/hubs/${hub}?access_token=${tok}`, { protocols: JSON_PROTOCOL });
    assert.ok(r.socket, `aud ${aud} was refused with HTTP ${r.status}`);
    await connectedFrame(r.socket);
    r.socket.terminate();
  }
});

test("row 6: an audience for another hub or another path is refused with 401", T, async () => {
  const hub = uniqueHub();
  for (const aud of [`${srv.endpoint}/client/hubs/${hub}x`, `${srv.endpoint}/api/hubs/${hub}`, `${srv.endpoint}/`]) {
    const tok = tokenFor(hub, { userId: "aud-bad", aud });
    const r = await tryUpgrade(`${wsBase()}/client/hubs/${hub}?access_token=${tok}`, { protocols: JSON_PROTOCOL });
    if (r.socket) r.socket.terminate();
    assert.equal(r.status, 401, `aud ${aud} should be refused`);
  }
});

test("row 7: tokens signed with the secondary key are accepted, REST and client", T, async () => {
  const hub = uniqueHub();
  const cs = `Endpoint=${srv.endpoint};AccessKey=${secondary};Version=1.0;`;
  const sc = srv.serviceClient(hub, { connectionString: cs });
  const { url } = await sc.getClientAccessToken({ userId: "second" });
  const sock = await srv.raw(url, { protocols: JSON_PROTOCOL });
  const connected = await connectedFrame(sock);
  assert.equal(connected.userId, "second");
  assert.equal(await sc.connectionExists(connected.connectionId), true);
  await sc.sendToConnection(connected.connectionId, "via-secondary", { contentType: "text/plain" });
  const m = await sock.waitJson((x) => x.type === "message");
  assert.equal(m.data, "via-secondary");
  // A key that is neither is refused.
  const other = tokenFor(hub, { key: newAccessKey(), userId: "third" });
  await expectRefused(`${wsBase()}/client/hubs/${hub}?access_token=${other}`, 401, { protocols: JSON_PROTOCOL });
});

test("row 8: no token is refused with 401 (anonymous policy deny), on every endpoint form", T, async () => {
  const hub = uniqueHub();
  await expectRefused(`${wsBase()}/client/hubs/${hub}`, 401, { protocols: JSON_PROTOCOL });
  await expectRefused(`${wsBase()}/client/hubs/${hub}`, 401, {});
  await expectRefused(`${wsBase()}/client/?hub=${hub}`, 401, { protocols: JSON_PROTOCOL });
  await expectRefused(`${wsBase()}/client/hubs/${hub}?access_token=`, 401, { protocols: JSON_PROTOCOL });
});

test("row 9: the server echoes the one supported subprotocol among those offered", T, async () => {
  const hub = uniqueHub();
  const url = await srv.clientUrl(hub, { userId: "sp" });
  const a = await srv.raw(url, { protocols: ["x-unknown", JSON_PROTOCOL] });
  assert.equal(a.protocol, JSON_PROTOCOL);
  await connectedFrame(a);
  const b = await srv.raw(url, { protocols: [RELIABLE_PROTOCOL] });
  assert.equal(b.protocol, RELIABLE_PROTOCOL);
  await connectedFrame(b);
  const c = await srv.raw(url, { protocols: [JSON_PROTOCOL, RELIABLE_PROTOCOL] });
  assert.ok([JSON_PROTOCOL, RELIABLE_PROTOCOL].includes(c.protocol), `selected ${c.protocol}`);
});

test("row 9: no subprotocol offered -> a raw client: no connected frame, plain frames", T, async () => {
  const hub = uniqueHub();
  const user = uniqueName("raw");
  const url = await srv.clientUrl(hub, { userId: user });
  const sock = await srv.raw(url, {});
  assert.equal(sock.protocol, "");
  await waitUntil(() => srv.serviceClient(hub).userExists(user), { what: "the raw user to exist" });
  await srv.serviceClient(hub).sendToUser(user, "plain-text", { contentType: "text/plain" });
  const f = await sock.waitFrame();
  assert.equal(f.isBinary, false);
  assert.equal(f.text, "plain-text", "the first frame of a raw client is the message itself");
});

test("row 10: json.webpubsub.azure.v1 gets {type:system,event:connected,userId,connectionId} first", T, async () => {
  const hub = uniqueHub();
  const url = await srv.clientUrl(hub, { userId: "first-frame" });
  const sock = await srv.raw(url, { protocols: JSON_PROTOCOL });
  const f = await sock.waitFrame();
  assert.equal(f.isBinary, false);
  const m = JSON.parse(f.text);
  assert.equal(m.type, "system");
  assert.equal(m.event, "connected");
  assert.equal(m.userId, "first-frame");
  assert.equal(typeof m.connectionId, "string");
  assert.ok(m.connectionId.length > 0);
  assert.equal(m.reconnectionToken, undefined, "no reconnectionToken on the non-reliable protocol");
  // And the SDK with the plain JSON protocol sees the same ids.
  const c = await srv.newClient(hub, { userId: "sdk-json" }, { protocol: WebPubSubJsonProtocol() });
  assert.equal(c.rec.all("connected")[0].userId, "sdk-json");
  assert.notEqual(c.connectionId, m.connectionId, "connection ids are unique");
});

test("row 10: a token without sub connects with no userId", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, {});
  assert.ok(sock.connectedMessage.userId === undefined || sock.connectedMessage.userId === null, JSON.stringify(sock.connectedMessage));
  assert.ok(sock.connectionId);
});

test("row 11: json.reliable.webpubsub.azure.v1 connected message carries a reconnectionToken", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "rel" }, RELIABLE_PROTOCOL);
  assert.equal(sock.protocol, RELIABLE_PROTOCOL);
  assert.equal(sock.connectedMessage.userId, "rel");
  assert.equal(typeof sock.reconnectionToken, "string");
  assert.ok(sock.reconnectionToken.length > 0);
  // The SDK's default (reliable) protocol connects too.
  const c = await srv.newClient(hub, { userId: "sdk-rel" });
  assert.ok(c.connectionId);
  assert.equal(c.client._reconnectionToken !== undefined && c.client._reconnectionToken !== "", true, "SDK stored a reconnectionToken");
});
