// PROTOCOL.md section 8, rows 41-58 and 60: existence checks, closes, group membership,
// permissions and group listing through WebPubSubServiceClient.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { expectAckError, syncClient } from "./lib/checks.mjs";
import { startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { sdkStatus, waitUntil } from "./lib/wait.mjs";

const T = { timeout: 30000 };
let srv;

before(async () => {
  srv = await startServer();
});
afterEach(async () => srv.closeClients());
after(async () => srv && srv.stop());

const received = (c) => c.rec.all("message").map((m) => m.data).filter((d) => !(d && d.sentinel));

/** Sends a tagged message to the group, then syncs every client; returns who got the tag. */
async function whoGets(hub, group, clients) {
  const tag = uniqueName("tag");
  await srv.serviceClient(hub).group(group).sendToAll({ tag });
  for (const c of clients) await syncClient(srv, c);
  return clients.filter((c) => received(c).some((d) => d && d.tag === tag)).map((c) => c.name);
}

async function named(hub, name, tokenOptions = {}, clientOptions = { protocol: "json" }) {
  const c = await srv.newClient(hub, { userId: name, ...tokenOptions }, clientOptions);
  c.name = name;
  return c;
}

test("row 41: connectionExists is true for a live connection, false for unknown and closed ones", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  const c = await named(hub, "exists");
  assert.equal(await sc.connectionExists(c.connectionId), true);
  assert.equal(await sc.connectionExists("nope-nope"), false);
  assert.equal(await srv.serviceClient(uniqueHub()).connectionExists(c.connectionId), false, "hubs are separate");
  c.client.stop();
  await waitUntil(async () => !(await sc.connectionExists(c.connectionId)), { what: "the stopped connection to vanish" });
});

test("row 42: groupExists is true while the group has a member", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const sc = srv.serviceClient(hub);
  assert.equal(await sc.groupExists(group), false);
  const c = await named(hub, "gm", { roles: ["webpubsub.joinLeaveGroup"] });
  await c.client.joinGroup(group);
  assert.equal(await sc.groupExists(group), true);
  await c.client.leaveGroup(group);
  assert.equal(await sc.groupExists(group), false);
  await c.client.joinGroup(group);
  c.client.stop();
  await waitUntil(async () => !(await sc.groupExists(group)), { what: "the group to vanish with its last connection" });
});

test("row 43: userExists is true while the user has a connection", T, async () => {
  const hub = uniqueHub();
  const user = uniqueName("u");
  const sc = srv.serviceClient(hub);
  assert.equal(await sc.userExists(user), false);
  const c = await named(hub, user);
  assert.equal(await sc.userExists(user), true);
  c.client.stop();
  await waitUntil(async () => !(await sc.userExists(user)), { what: "the user to vanish" });
});

test("row 44: closeConnection answers 204 and delivers the reason", T, async () => {
  const hub = uniqueHub();
  const c = await named(hub, "closing", {}, { protocol: "json", autoReconnect: false });
  const keep = await named(hub, "staying");
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.closeConnection(c.connectionId, { reason: "r44", ...o }))).status, 204);
  const d = await c.rec.wait("disconnected");
  assert.equal(d.message && d.message.message, "r44");
  assert.equal(await sc.connectionExists(c.connectionId), false);
  assert.equal(await sc.connectionExists(keep.connectionId), true);
  assert.equal((await sdkStatus((o) => sc.closeConnection("unknown-conn", o))).status, 204, "closing an unknown connection");
});

test("row 45: closeAllConnections answers 204, honours excluded and reason", T, async () => {
  const hub = uniqueHub();
  const socks = [];
  for (const u of ["c1", "c2", "c3"]) socks.push(await srv.rawClient(hub, { userId: u }));
  const other = await srv.rawClient(uniqueHub(), { userId: "other-hub" });
  const sc = srv.serviceClient(hub);
  const r = await sdkStatus((o) => sc.closeAllConnections({ excluded: [socks[1].connectionId], reason: "all go", ...o }));
  assert.equal(r.status, 204);
  for (const s of [socks[0], socks[2]]) {
    await s.waitClose();
    assert.deepEqual(s.jsons().at(-1), { type: "system", event: "disconnected", message: "all go" });
  }
  assert.equal(await sc.connectionExists(socks[1].connectionId), true, "the excluded connection stays");
  assert.ok(socks[1].isOpen);
  assert.ok(other.isOpen, "another hub is untouched");
});

test("row 46: group closeAllConnections answers 204 and closes only members", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const m1 = await srv.rawClient(hub, { userId: "gm1", groups: [group] });
  const m2 = await srv.rawClient(hub, { userId: "gm2", groups: [group] });
  const out = await srv.rawClient(hub, { userId: "gout" });
  const sc = srv.serviceClient(hub);
  const r = await sdkStatus((o) => sc.group(group).closeAllConnections({ reason: "group closed", excluded: [m2.connectionId], ...o }));
  assert.equal(r.status, 204);
  await m1.waitClose();
  assert.deepEqual(m1.jsons().at(-1), { type: "system", event: "disconnected", message: "group closed" });
  assert.equal(await sc.connectionExists(out.connectionId), true);
  assert.equal(await sc.connectionExists(m2.connectionId), true, "excluded member stays");
});

test("row 47: closeUserConnections answers 204 and closes all of the user's connections only", T, async () => {
  const hub = uniqueHub();
  const user = uniqueName("u");
  const a = await srv.rawClient(hub, { userId: user });
  const b = await srv.rawClient(hub, { userId: user });
  const other = await srv.rawClient(hub, { userId: `${user}-x` });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.closeUserConnections(user, { reason: "user out", ...o }))).status, 204);
  for (const s of [a, b]) {
    await s.waitClose();
    assert.deepEqual(s.jsons().at(-1), { type: "system", event: "disconnected", message: "user out" });
  }
  assert.equal(await sc.userExists(user), false);
  assert.equal(await sc.connectionExists(other.connectionId), true);
});

test("row 48: addConnection answers 200 and the connection gets group messages", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await named(hub, "added");
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.group(group).addConnection(c.connectionId, o))).status, 200);
  assert.equal(await sc.groupExists(group), true);
  assert.deepEqual(await whoGets(hub, group, [c]), ["added"]);
});

test("row 48: addConnection of an unknown connection is 404 (the SDK throws a RestError)", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  await assert.rejects(sc.group("g").addConnection("no-such-conn"), (err) => {
    assert.equal(err.statusCode, 404, String(err.message));
    return true;
  });
  const r = await sdkStatus((o) => sc.group("g").addConnection("no-such-conn", o));
  assert.equal(r.status, 404);
  assert.equal(await sc.groupExists("g"), false);
});

test("row 49: removeConnection answers 204 and stops group delivery", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const a = await named(hub, "ra", { groups: [group] });
  const b = await named(hub, "rb", { groups: [group] });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.group(group).removeConnection(a.connectionId, o))).status, 204);
  assert.deepEqual(await whoGets(hub, group, [a, b]), ["rb"]);
  assert.equal((await sdkStatus((o) => sc.group(group).removeConnection("unknown", o))).status, 204);
});

test("row 50: removeConnectionFromAllGroups answers 204 and leaves every group", T, async () => {
  const hub = uniqueHub();
  const g1 = uniqueName("g");
  const g2 = uniqueName("g");
  const a = await named(hub, "rall", { groups: [g1, g2] });
  const b = await named(hub, "rkeep", { groups: [g1, g2] });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.removeConnectionFromAllGroups(a.connectionId, o))).status, 204);
  assert.deepEqual(await whoGets(hub, g1, [a, b]), ["rkeep"]);
  assert.deepEqual(await whoGets(hub, g2, [a, b]), ["rkeep"]);
  assert.equal((await sdkStatus((o) => sc.removeConnectionFromAllGroups("unknown", o))).status, 204);
});

test("row 51: addUser answers 200 and adds all of the user's current connections", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const user = uniqueName("u");
  const a = await named(hub, user);
  const b = await named(hub, user);
  b.name = `${user}#2`;
  const other = await named(hub, `${user}-x`);
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.group(group).addUser(user, o))).status, 200);
  assert.deepEqual(await whoGets(hub, group, [a, b, other]), [user, `${user}#2`]);
  assert.equal((await sdkStatus((o) => sc.group(group).addUser("offline-user", o))).status, 200, "a user with no connection");
});

test("row 52: removeUser answers 204 and removes all of the user's connections", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const user = uniqueName("u");
  const a = await named(hub, user, { groups: [group] });
  const other = await named(hub, `${user}-x`, { groups: [group] });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.group(group).removeUser(user, o))).status, 204);
  assert.deepEqual(await whoGets(hub, group, [a, other]), [`${user}-x`]);
  assert.equal((await sdkStatus((o) => sc.group(group).removeUser("offline-user", o))).status, 204);
});

test("row 53: removeUserFromAllGroups answers 204", T, async () => {
  const hub = uniqueHub();
  const g1 = uniqueName("g");
  const g2 = uniqueName("g");
  const user = uniqueName("u");
  const a = await named(hub, user, { groups: [g1, g2] });
  const other = await named(hub, `${user}-x`, { groups: [g1, g2] });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.removeUserFromAllGroups(user, o))).status, 204);
  assert.deepEqual(await whoGets(hub, g1, [a, other]), [`${user}-x`]);
  assert.deepEqual(await whoGets(hub, g2, [a, other]), [`${user}-x`]);
});

test("row 54: addConnectionsToGroups answers 200 and adds the filtered connections", T, async () => {
  const hub = uniqueHub();
  const g1 = uniqueName("g");
  const g2 = uniqueName("g");
  const a = await named(hub, "fa");
  const b = await named(hub, "fb");
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.addConnectionsToGroups([g1, g2], "userId eq 'fa'", o))).status, 200);
  assert.deepEqual(await whoGets(hub, g1, [a, b]), ["fa"]);
  assert.deepEqual(await whoGets(hub, g2, [a, b]), ["fa"]);
});

test("row 54: addConnectionsToGroups with an empty filter adds every connection of the hub", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const a = await named(hub, "ea");
  const b = await named(hub, "eb");
  const other = await srv.newClient(uniqueHub(), { userId: "elsewhere" }, { protocol: "json" });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.addConnectionsToGroups([group], "", o))).status, 200);
  assert.deepEqual(await whoGets(hub, group, [a, b]), ["ea", "eb"]);
  await syncClient(srv, other);
  assert.deepEqual(received(other), []);
});

test("row 55: removeConnectionsFromGroups answers 200 and removes the filtered connections", T, async () => {
  const hub = uniqueHub();
  const g1 = uniqueName("g");
  const a = await named(hub, "xa", { groups: [g1] });
  const b = await named(hub, "xb", { groups: [g1] });
  const sc = srv.serviceClient(hub);
  assert.equal((await sdkStatus((o) => sc.removeConnectionsFromGroups([g1], `connectionId eq '${a.connectionId}'`, o))).status, 200);
  assert.deepEqual(await whoGets(hub, g1, [a, b]), ["xb"]);
});

test("row 56: grantPermission answers 200 and enables joinGroup", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await named(hub, "granted");
  const sc = srv.serviceClient(hub);
  await expectAckError(c.client.joinGroup(group), "Forbidden");
  assert.equal((await sdkStatus((o) => sc.grantPermission(c.connectionId, "joinLeaveGroup", { targetName: group, ...o }))).status, 200);
  const r = await c.client.joinGroup(group);
  assert.equal(r.isDuplicated, false);
  assert.equal(await sc.groupExists(group), true);
});

test("row 56: grantPermission on an unknown connection is 404", T, async () => {
  const sc = srv.serviceClient(uniqueHub());
  const r = await sdkStatus((o) => sc.grantPermission("no-such-conn", "sendToGroup", { targetName: "g", ...o }));
  assert.equal(r.status, 404);
});

test("row 57: revokePermission answers 204 (also for an unknown connection) and takes the right away", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const c = await named(hub, "revoked", { roles: [`webpubsub.joinLeaveGroup.${group}`] });
  const sc = srv.serviceClient(hub);
  const r = await sdkStatus((o) => sc.revokePermission(c.connectionId, "joinLeaveGroup", { targetName: group, ...o }));
  assert.equal(r.status, 204);
  await expectAckError(c.client.joinGroup(group), "Forbidden");
  assert.equal((await sdkStatus((o) => sc.revokePermission("no-such-conn", "joinLeaveGroup", { targetName: group, ...o }))).status, 204);
});

test("row 58: hasPermission reflects roles and grants (200 / 404)", T, async () => {
  const hub = uniqueHub();
  const c = await named(hub, "checker", { roles: ["webpubsub.sendToGroup.ga"] });
  const sc = srv.serviceClient(hub);
  assert.equal(await sc.hasPermission(c.connectionId, "sendToGroup", { targetName: "ga" }), true);
  assert.equal(await sc.hasPermission(c.connectionId, "sendToGroup", { targetName: "gb" }), false);
  assert.equal(await sc.hasPermission(c.connectionId, "joinLeaveGroup", { targetName: "ga" }), false);
  await sc.grantPermission(c.connectionId, "joinLeaveGroup", { targetName: "gc" });
  assert.equal(await sc.hasPermission(c.connectionId, "joinLeaveGroup", { targetName: "gc" }), true);
  await sc.revokePermission(c.connectionId, "sendToGroup", { targetName: "ga" });
  assert.equal(await sc.hasPermission(c.connectionId, "sendToGroup", { targetName: "ga" }), false);
  assert.equal(await sc.hasPermission("no-such-conn", "sendToGroup", { targetName: "ga" }), false);
});

test("row 60: listConnections pages by maxPageSize in connection-id order with userIds", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await srv.rawClient(hub, { userId: `lu${i}`, groups: [group] }));
  await srv.rawClient(hub, { userId: "not-member" });
  const sc = srv.serviceClient(hub);
  const pages = [];
  // listConnections() is async in @azure/web-pubsub 1.2.0: it resolves to the paged iterator.
  for await (const page of (await sc.group(group).listConnections({ maxPageSize: 2 })).byPage()) pages.push(page);
  assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
  const all = pages.flat();
  const expected = clients.map((s) => ({ connectionId: s.connectionId, userId: s.connectedMessage.userId }));
  expected.sort((x, y) => (x.connectionId < y.connectionId ? -1 : x.connectionId > y.connectionId ? 1 : 0));
  assert.deepEqual(all.map((m) => ({ connectionId: m.connectionId, userId: m.userId })), expected);
  const flat = [];
  for await (const m of await sc.group(group).listConnections()) flat.push(m.connectionId);
  assert.deepEqual(flat, expected.map((e) => e.connectionId));
  const top = [];
  for await (const m of await sc.group(group).listConnections({ top: 3 })) top.push(m.connectionId);
  assert.deepEqual(top, expected.slice(0, 3).map((e) => e.connectionId));
  const none = [];
  for await (const m of await sc.group("no-such-group").listConnections()) none.push(m);
  assert.deepEqual(none, []);
});

test("row 60: the raw listing is {value, nextLink} with an absolute nextLink", T, async () => {
  const hub = uniqueHub();
  const group = uniqueName("g");
  for (let i = 0; i < 3; i++) await srv.rawClient(hub, { userId: `rl${i}`, groups: [group] });
  const r = await srv.rest("GET", `/api/hubs/${hub}/groups/${group}/connections`, { query: { maxpagesize: 2 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.value.length, 2);
  assert.equal(typeof r.json.nextLink, "string");
  const next = new URL(r.json.nextLink);
  assert.equal(next.origin, srv.endpoint, `nextLink ${r.json.nextLink}`);
  const r2 = await srv.rest("GET", next.pathname + next.search, { apiVersion: !next.searchParams.has("api-version") });
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.json.value.length, 1);
  assert.ok(r2.json.nextLink === undefined || r2.json.nextLink === null, `last page nextLink ${r2.json.nextLink}`);
});
