// PROTOCOL.md section 8, rows 33-40: REST auth, health, sends, content types, server-side close.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { syncClient, syncRaw, toBuf } from "./lib/checks.mjs";
import { signJwt } from "./lib/jwt.mjs";
import { API_VERSION, RELIABLE_PROTOCOL, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { sdkStatus, waitUntil } from "./lib/wait.mjs";

const T = { timeout: 30000 };
let srv;

before(async () => {
  srv = await startServer();
});
afterEach(async () => srv.closeClients());
after(async () => srv && srv.stop());

/** Messages (data) a client got, sentinels removed. */
const received = (c) => c.rec.all("message").map((m) => m.data).filter((d) => !(d && d.sentinel));

test("row 33: REST close sends {type:system,event:disconnected,message:reason} then closes 1000", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "closeme" });
  const { status } = await sdkStatus((o) => srv.serviceClient(hub).closeConnection(sock.connectionId, { reason: "bye now", ...o }));
  assert.equal(status, 204);
  const closed = await sock.waitClose();
  const last = sock.jsons().at(-1);
  assert.deepEqual(last, { type: "system", event: "disconnected", message: "bye now" });
  assert.equal(closed.code, 1000);
});

test("row 33: a reliable connection closed by REST gets the disconnected message then close 1008", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "closerel" }, RELIABLE_PROTOCOL);
  await srv.serviceClient(hub).closeConnection(sock.connectionId, { reason: "rel bye" });
  const closed = await sock.waitClose();
  const disc = sock.jsons().find((m) => m.type === "system" && m.event === "disconnected");
  assert.ok(disc, `frames: ${JSON.stringify(sock.jsons())}`);
  assert.equal(disc.message, "rel bye");
  assert.equal(closed.code, 1008);
});

test("row 33: the SDK client surfaces the close reason in its disconnected event and does not recover", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "sdkclose" }, { autoReconnect: false });
  await srv.serviceClient(hub).closeConnection(c.connectionId, { reason: "server says bye" });
  const d = await c.rec.wait("disconnected", () => true, 15000);
  assert.equal(d.connectionId, c.connectionId);
  assert.equal(d.message && d.message.message, "server says bye");
  await c.rec.wait("stopped", () => true, 15000);
  assert.equal(await srv.serviceClient(hub).connectionExists(c.connectionId), false);
});

test("row 34: REST accepts the SDK's HS256 bearer token (aud = full URL with query)", T, async () => {
  const hub = uniqueHub();
  const r = await srv.rest("POST", `/api/hubs/${hub}/:send`, { body: "x", contentType: "text/plain", query: { excluded: ["a", "b"] } });
  assert.equal(r.status, 202, r.text);
});

test("row 34: the REST audience ignores the query string; HS384/HS512 accepted", T, async () => {
  const hub = uniqueHub();
  const path = `/api/hubs/${hub}/:send`;
  const now = Math.floor(Date.now() / 1000);
  const noQuery = signJwt({ aud: `${srv.endpoint}${path}`, iat: now, exp: now + 600 }, srv.key);
  let r = await srv.rest("POST", path, { body: "x", contentType: "text/plain", auth: `Bearer ${noQuery}` });
  assert.equal(r.status, 202, `aud without query: ${r.text}`);
  for (const alg of ["HS384", "HS512"]) {
    const url = `${srv.endpoint}${path}?api-version=${API_VERSION}`;
    const tok = signJwt({ aud: url, iat: now, exp: now + 600 }, srv.key, { alg });
    r = await srv.rest("POST", path, { body: "x", contentType: "text/plain", auth: `Bearer ${tok}` });
    assert.equal(r.status, 202, `${alg}: ${r.text}`);
  }
});

test("row 34: the REST audience host is not compared, only the path", T, async () => {
  const hub = uniqueHub();
  const path = `/api/hubs/${hub}/:send`;
  const now = Math.floor(Date.now() / 1000);
  for (const host of ["https://example.webpubsub.azure.com", `http://localhost:${srv.port}`]) {
    const tok = signJwt({ aud: `${host}${path}?api-version=${API_VERSION}`, iat: now, exp: now + 600 }, srv.key);
    const r = await srv.rest("POST", path, { body: "x", contentType: "text/plain", auth: `Bearer ${tok}` });
    assert.equal(r.status, 202, `aud host ${host}: ${r.text}`);
  }
});

test("row 34: expired, missing or misdirected REST tokens get 401", T, async () => {
  const hub = uniqueHub();
  const path = `/api/hubs/${hub}/:send`;
  const url = `${srv.endpoint}${path}?api-version=${API_VERSION}`;
  const now = Math.floor(Date.now() / 1000);
  const cases = {
    expired: `Bearer ${signJwt({ aud: url, iat: now - 7200, exp: now - 3600 }, srv.key)}`,
    "other path": `Bearer ${signJwt({ aud: `${srv.endpoint}/api/hubs/${hub}x/:send`, iat: now, exp: now + 600 }, srv.key)}`,
    "wrong key": `Bearer ${signJwt({ aud: url, iat: now, exp: now + 600 }, "W".repeat(44))}`,
    "not a jwt": "Bearer abc.def.ghi",
    "no header": false,
  };
  for (const [what, auth] of Object.entries(cases)) {
    const r = await srv.rest("POST", path, { body: "x", contentType: "text/plain", auth });
    assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
  }
});

test("row 35: HEAD /api/health answers 200", T, async () => {
  assert.equal((await srv.rest("HEAD", "/api/health", { auth: false })).status, 200);
  assert.equal((await srv.rest("HEAD", "/api/health", { auth: false, apiVersion: false })).status, 200);
  assert.equal((await srv.rest("HEAD", "/api/health")).status, 200);
});

test("row 36: sendToAll answers 202 and reaches every connection of the hub only", T, async () => {
  const hub = uniqueHub();
  const a = await srv.newClient(hub, { userId: "a" }, { protocol: "json" });
  const b = await srv.newClient(hub, { userId: "b" });
  const other = await srv.newClient(uniqueHub(), { userId: "elsewhere" }, { protocol: "json" });
  const { status } = await sdkStatus((o) => srv.serviceClient(hub).sendToAll({ all: 1 }, o));
  assert.equal(status, 202);
  for (const c of [a, b]) {
    const m = await c.rec.wait("message", (x) => x.data && x.data.all === 1);
    assert.equal(m.from, "server");
    assert.equal(m.dataType, "json");
  }
  await syncClient(srv, other);
  assert.deepEqual(received(other), [], "another hub got nothing");
});

test("row 36: sendToAll honours excluded (repeated)", T, async () => {
  const hub = uniqueHub();
  const cs = [];
  for (const u of ["x1", "x2", "x3"]) cs.push(await srv.newClient(hub, { userId: u }, { protocol: "json" }));
  await srv.serviceClient(hub).sendToAll({ ex: 1 }, { excludedConnections: [cs[0].connectionId, cs[2].connectionId] });
  await cs[1].rec.wait("message", (m) => m.data && m.data.ex === 1);
  for (const c of [cs[0], cs[2]]) {
    await syncClient(srv, c);
    assert.deepEqual(received(c), [], `excluded ${c.userId} got nothing`);
  }
});

test("row 36: sendToAll honours filter and accepts messageTtlSeconds", T, async () => {
  const hub = uniqueHub();
  const u1 = await srv.newClient(hub, { userId: "f1" }, { protocol: "json" });
  const u2 = await srv.newClient(hub, { userId: "f2" }, { protocol: "json" });
  await srv.serviceClient(hub).sendToAll({ f: 1 }, { filter: "userId eq 'f2'" });
  const { status } = await sdkStatus((o) => srv.serviceClient(hub).sendToAll({ ttl: 1 }, { messageTtlSeconds: 60, ...o }));
  assert.equal(status, 202);
  await u2.rec.wait("message", (m) => m.data && m.data.ttl === 1);
  await syncClient(srv, u1);
  assert.deepEqual(received(u1), [{ ttl: 1 }]);
  assert.deepEqual(received(u2), [{ f: 1 }, { ttl: 1 }]);
});

test("row 37: sendToConnection answers 202, also for an unknown connection", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "target" }, { protocol: "json" });
  const bystander = await srv.newClient(hub, { userId: "target" }, { protocol: "json" });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.sendToConnection("no-such-connection", { x: 1 }, o))).status, 202);
  assert.equal((await sdkStatus((o) => sc.sendToConnection(c.connectionId, { to: "you" }, o))).status, 202);
  const m = await c.rec.wait("message", (x) => x.data && x.data.to === "you");
  assert.equal(m.from, "server");
  await syncClient(srv, bystander);
  assert.deepEqual(received(bystander), [], "only the named connection got it");
});

test("row 38: sendToUser answers 202 and reaches all of the user's connections", T, async () => {
  const hub = uniqueHub();
  const user = uniqueName("u");
  const c1 = await srv.newClient(hub, { userId: user }, { protocol: "json" });
  const c2 = await srv.newClient(hub, { userId: user });
  const other = await srv.newClient(hub, { userId: `${user}-other` }, { protocol: "json" });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.sendToUser(user, { u: 1 }, o))).status, 202);
  assert.equal((await sdkStatus((o) => sc.sendToUser("nobody-here", { u: 0 }, o))).status, 202);
  await c1.rec.wait("message", (m) => m.data && m.data.u === 1);
  await c2.rec.wait("message", (m) => m.data && m.data.u === 1);
  await syncClient(srv, other);
  assert.deepEqual(received(other), []);
});

test("row 38: sendToUser honours filter", T, async () => {
  const hub = uniqueHub();
  const user = uniqueName("u");
  const c1 = await srv.newClient(hub, { userId: user }, { protocol: "json" });
  const c2 = await srv.newClient(hub, { userId: user }, { protocol: "json" });
  await srv.serviceClient(hub).sendToUser(user, { only: 2 }, { filter: `connectionId eq '${c2.connectionId}'` });
  await c2.rec.wait("message", (m) => m.data && m.data.only === 2);
  await syncClient(srv, c1);
  assert.deepEqual(received(c1), [], "the filtered-out connection got nothing");
});

test("row 39: group sendToAll answers 202 and honours excluded and filter", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const m1 = await srv.newClient(hub, { userId: "m1", groups: [group] }, { protocol: "json" });
  const m2 = await srv.newClient(hub, { userId: "m2", groups: [group] }, { protocol: "json" });
  const m3 = await srv.newClient(hub, { userId: "m3", groups: [group] }, { protocol: "json" });
  const out = await srv.newClient(hub, { userId: "out" }, { protocol: "json" });
  const g = srv.serviceClient(hub).group(group);
  assert.equal((await sdkStatus((o) => g.sendToAll({ k: "all" }, o))).status, 202);
  assert.equal((await sdkStatus((o) => g.sendToAll({ k: "ex" }, { excludedConnections: [m1.connectionId], ...o }))).status, 202);
  assert.equal((await sdkStatus((o) => g.sendToAll({ k: "flt" }, { filter: "userId eq 'm3'", ...o }))).status, 202);
  assert.equal((await sdkStatus((o) => srv.serviceClient(hub).group("empty-group").sendToAll({ k: 0 }, o))).status, 202);
  for (const c of [m1, m2, m3, out]) await syncClient(srv, c);
  assert.deepEqual(received(m1).map((d) => d.k), ["all"]);
  assert.deepEqual(received(m2).map((d) => d.k), ["all", "ex"]);
  assert.deepEqual(received(m3).map((d) => d.k), ["all", "ex", "flt"]);
  assert.deepEqual(received(out), []);
  const sample = m1.rec.all("message").find((m) => m.data && m.data.k === "all");
  assert.equal(sample.dataType, "json");
});

test("row 40: SDK payloads map to dataType json / text / binary", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "ct" }, { protocol: "json" });
  const sc = srv.serviceClient(hub);
  await sc.sendToConnection(c.connectionId, { obj: true });
  await sc.sendToConnection(c.connectionId, "a string");
  await sc.sendToConnection(c.connectionId, "plain text", { contentType: "text/plain" });
  await sc.sendToConnection(c.connectionId, Uint8Array.from([9, 8, 7]));
  await waitUntil(() => c.rec.all("message").length >= 4, { what: "4 messages" });
  const [m1, m2, m3, m4] = c.rec.all("message");
  assert.deepEqual([m1.dataType, m1.data], ["json", { obj: true }]);
  assert.deepEqual([m2.dataType, m2.data], ["json", "a string"]);
  assert.deepEqual([m3.dataType, m3.data], ["text", "plain text"]);
  assert.equal(m4.dataType, "binary");
  assert.deepEqual([...toBuf(m4.data)], [9, 8, 7]);
});

test("row 40: content types with parameters are tolerated (raw REST)", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "ctp" });
  const path = `/api/hubs/${hub}/connections/${sock.connectionId}/:send`;
  let r = await srv.rest("POST", path, { body: '{"p":1}', contentType: "application/json; charset=utf-8" });
  assert.equal(r.status, 202, r.text);
  r = await srv.rest("POST", path, { body: "héllo", contentType: "text/plain; charset=utf-8" });
  assert.equal(r.status, 202, r.text);
  r = await srv.rest("POST", path, { body: Buffer.from([1, 2, 255]), contentType: "application/octet-stream" });
  assert.equal(r.status, 202, r.text);
  await waitUntil(() => sock.messages().length >= 3, { what: "3 messages" });
  const [a, b, c] = sock.messages();
  assert.deepEqual([a.from, a.dataType, a.data], ["server", "json", { p: 1 }]);
  assert.deepEqual([b.dataType, b.data], ["text", "héllo"]);
  assert.deepEqual([c.dataType, c.data], ["binary", Buffer.from([1, 2, 255]).toString("base64")]);
  await syncRaw(srv, hub, sock);
});

test("row 38: user ids with spaces, '+', '@' and non-ASCII work through the SDK's path encoding", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  for (const user of ["u 1", "a+b", "me@example.com", "jürgen", "semi;colon"]) {
    const c = await srv.newClient(hub, { userId: user }, { protocol: "json" });
    assert.equal(c.rec.all("connected")[0].userId, user);
    assert.equal(await sc.userExists(user), true, `userExists(${JSON.stringify(user)})`);
    await sc.sendToUser(user, { to: user });
    const m = await c.rec.wait("message", (x) => x.data && x.data.to === user);
    assert.equal(m.from, "server");
  }
});

test("row 36: hub names are case-insensitive between REST and clients", T, async () => {
  const hub = uniqueHub("MixedCase");
  const c = await srv.newClient(hub, { userId: "case" }, { protocol: "json" });
  const upper = srv.serviceClient(hub.toUpperCase());
  assert.equal(await upper.connectionExists(c.connectionId), true);
  await upper.sendToAll({ upper: true });
  await c.rec.wait("message", (m) => m.data && m.data.upper === true);
});

test("row 36: a REST broadcast reaches SDK clients in order, each message once", T, async () => {
  const hub = uniqueHub();
  const a = await srv.newClient(hub, { userId: "o1" }, { protocol: "json" });
  const b = await srv.newClient(hub, { userId: "o2" });
  const sc = srv.serviceClient(hub);
  await Promise.all(Array.from({ length: 10 }, (_, i) => i).map(async (i) => sc.sendToConnection(a.connectionId, { warm: i })));
  for (let i = 0; i < 50; i++) await sc.sendToAll({ n: i });
  for (const c of [a, b]) {
    await waitUntil(() => received(c).filter((d) => "n" in d).length >= 50, { what: "50 broadcasts" });
    await syncClient(srv, c);
    assert.deepEqual(received(c).filter((d) => "n" in d).map((d) => d.n), Array.from({ length: 50 }, (_, i) => i));
  }
});

test("row 34: any api-version is accepted, and a missing one defaults", T, async () => {
  const hub = uniqueHub();
  const sock = await srv.rawClient(hub, { userId: "apiv" });
  const path = `/api/hubs/${hub}/connections/${sock.connectionId}/:send`;
  for (const v of ["2021-10-01", "2022-11-01", "2024-01-01", "2024-12-01"]) {
    const r = await srv.rest("POST", path, { body: v, contentType: "text/plain", apiVersion: false, query: { "api-version": v } });
    assert.equal(r.status, 202, `api-version ${v}: ${r.text}`);
  }
  const r = await srv.rest("POST", path, { body: "none", contentType: "text/plain", apiVersion: false });
  assert.equal(r.status, 202, `no api-version: ${r.text}`);
  await waitUntil(() => sock.messages().length >= 5, { what: "5 messages" });
  assert.deepEqual(sock.messages().map((m) => m.data), ["2021-10-01", "2022-11-01", "2024-01-01", "2024-12-01", "none"]);
});
