// Hubcast extensions (PROTOCOL.md, "Hubcast extensions"): remembered user-group memberships
// (`ttl` on PUT /users/{user}/groups/{group}) and the listing endpoints
// GET /users/{user}/groups and GET /groups, driven through the official server SDK where it
// has a method and through raw REST calls (signed like the SDK) where it has none.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { syncClient } from "./lib/checks.mjs";
import { startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { sleep, waitUntil } from "./lib/wait.mjs";

const T = { timeout: 40000 };
let srv;

before(async () => {
  srv = await startServer();
});
afterEach(async () => srv.closeClients());
after(async () => srv && srv.stop());

const addUser = (hub, user, group, ttl) =>
  srv.rest("PUT", `/api/hubs/${hub}/users/${encodeURIComponent(user)}/groups/${encodeURIComponent(group)}`, {
    query: ttl === undefined ? {} : { ttl },
  });

/** True if a group message sent now reaches client c. */
async function reaches(hub, group, c) {
  const tag = uniqueName("tag");
  await srv.serviceClient(hub).group(group).sendToAll({ tag });
  await syncClient(srv, c);
  return c.rec.all("message").some((m) => m.data && m.data.tag === tag);
}

/** Follows nextLink until the end; returns every item. */
async function listAll(firstPath, query) {
  const items = [];
  let res = await srv.rest("GET", firstPath, { query });
  let pages = 0;
  for (;;) {
    assert.equal(res.status, 200, res.text);
    items.push(...res.json.value);
    pages++;
    if (!res.json.nextLink) break;
    const next = new URL(res.json.nextLink);
    const q = Object.fromEntries([...next.searchParams].filter(([k]) => k !== "api-version"));
    res = await srv.rest("GET", next.pathname, { query: q });
  }
  return { items, pages };
}

test("extension: addUser with ttl=-1 makes the user's later connections join the group", T, async () => {
  const hub = uniqueHub();
  assert.equal((await addUser(hub, "offline", "g-remembered", -1)).status, 200);
  const c = await srv.newClient(hub, { userId: "offline" }, { protocol: "json" });
  assert.ok(await reaches(hub, "g-remembered", c), "a connection made after the add is in the group");
  assert.ok(await srv.serviceClient(hub).groupExists("g-remembered"));
});

test("extension: without ttl addUser only affects current connections, like Azure", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  const first = await srv.newClient(hub, { userId: "u" }, { protocol: "json" });
  await sc.group("g").addUser("u");
  assert.ok(await reaches(hub, "g", first));
  const later = await srv.newClient(hub, { userId: "u" }, { protocol: "json" });
  assert.equal(await reaches(hub, "g", later), false, "a later connection is not in the group");
});

test("extension: a remembered membership expires: later connections do not join, current ones leave", T, async () => {
  const hub = uniqueHub();
  const c = await srv.newClient(hub, { userId: "short" }, { protocol: "json" });
  assert.equal((await addUser(hub, "short", "g-ttl", 2)).status, 200);
  assert.ok(await reaches(hub, "g-ttl", c), "the current connection joined");
  await sleep(2500);
  const later = await srv.newClient(hub, { userId: "short" }, { protocol: "json" });
  assert.equal(await reaches(hub, "g-ttl", later), false, "a connection after the expiry does not join");
  // The expiry sweep removes the current connection too (it runs every few seconds).
  await waitUntil(async () => !(await srv.serviceClient(hub).groupExists("g-ttl")), {
    timeout: 15000,
    what: "the expired membership to be removed from the current connection",
  });
});

test("extension: removeUser and removeUserFromAllGroups forget remembered memberships", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  for (const g of ["a", "b", "c"]) assert.equal((await addUser(hub, "forget", g, -1)).status, 200);
  await sc.group("a").removeUser("forget");
  let c = await srv.newClient(hub, { userId: "forget" }, { protocol: "json" });
  assert.equal(await reaches(hub, "a", c), false);
  assert.ok(await reaches(hub, "b", c));
  await sc.removeUserFromAllGroups("forget");
  c.client.stop();
  c = await srv.newClient(hub, { userId: "forget" }, { protocol: "json" });
  assert.equal(await reaches(hub, "b", c), false);
  assert.equal(await reaches(hub, "c", c), false);
});

test("extension: ttl must be -1 or a positive number of seconds (400 otherwise)", T, async () => {
  const hub = uniqueHub();
  for (const bad of ["0", "-2", "abc", "1.5", "315360001"]) {
    const res = await addUser(hub, "u", "g", bad);
    assert.equal(res.status, 400, `ttl=${bad}`);
    assert.equal(res.json.code, "BadRequest");
  }
  assert.deepEqual((await srv.rest("GET", `/api/hubs/${hub}/users/u/groups`)).json.value, []);
});

test("extension: GET /users/{user}/groups lists remembered and current groups, paged", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  const c = await srv.newClient(hub, { userId: "lister" }, { protocol: "json" });
  await sc.group("live").addConnection(c.connectionId);
  for (const g of ["p1", "p2", "p3", "p4"]) assert.equal((await addUser(hub, "lister", g, -1)).status, 200);
  assert.equal((await addUser(hub, "lister", "timed", 3600)).status, 200);
  const { items, pages } = await listAll(`/api/hubs/${hub}/users/lister/groups`, { maxpagesize: 2 });
  assert.deepEqual(items.map((i) => i.name), ["live", "p1", "p2", "p3", "p4", "timed"]);
  assert.ok(pages >= 3, `paged by 2 (${pages} pages)`);
  const byName = Object.fromEntries(items.map((i) => [i.name, i]));
  assert.equal("expiresAt" in byName.live, false, "a group joined only through a connection has no expiresAt");
  assert.equal(byName.p1.expiresAt, null, "ttl=-1 never expires");
  const expires = Date.parse(byName.timed.expiresAt);
  assert.ok(expires > Date.now() + 3500e3 && expires < Date.now() + 3700e3, byName.timed.expiresAt);
});

test("extension: GET /groups lists the hub's groups with members, paged", T, async () => {
  const hub = uniqueHub();
  const sc = srv.serviceClient(hub);
  const c = await srv.newClient(hub, { userId: "member" }, { protocol: "json" });
  const names = ["g0", "g1", "g2", "g3", "g4"];
  for (const g of names) await sc.group(g).addConnection(c.connectionId);
  const { items, pages } = await listAll(`/api/hubs/${hub}/groups`, { maxpagesize: 2 });
  assert.deepEqual(items.map((i) => i.name), names);
  assert.equal(pages, 3);
  const top = await srv.rest("GET", `/api/hubs/${hub}/groups`, { query: { top: 3 } });
  assert.equal(top.json.value.length, 3);
  await sc.group("g0").removeConnection(c.connectionId);
  const after = await listAll(`/api/hubs/${hub}/groups`, {});
  assert.deepEqual(after.items.map((i) => i.name), names.slice(1), "a group without members is not listed");
  const bad = await srv.rest("GET", `/api/hubs/${hub}/groups`, { query: { continuationToken: "!!" } });
  assert.equal(bad.status, 400);
});
