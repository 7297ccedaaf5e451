// Several nodes over one nats-server (JetStream): what one node is told, every node knows.
// Issue #8: messages cross nodes, memberships made on one node are used by another, reads on
// any node see every acknowledged write, hubs are made only by authenticated writes, a node
// that joins after the stream dropped old entries starts from a snapshot, and NATS going away
// makes writes fail fast and come back by themselves.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startCluster } from "./lib/cluster.mjs";
import { signJwt } from "./lib/jwt.mjs";
import { uniqueHub } from "./lib/server.mjs";
import { sleep, waitUntil } from "./lib/wait.mjs";

const T = { timeout: 120000 };
const TEXT = { contentType: "text/plain" };

let cluster;
before(async () => {
  cluster = await startCluster({ regions: ["r1"], nodesPerRegion: 3, replicas: 1 });
});
after(async () => {
  if (cluster) await cluster.stop();
});

const nodes = () => cluster.nodes.map((n) => n.srv);

async function streamNames(nats) {
  const r = await fetch(`http://127.0.0.1:${nats.servers[0].monitorPort}/jsz?streams=true`);
  const j = await r.json();
  const names = [];
  for (const acc of j.account_details ?? []) {
    for (const s of acc.stream_detail ?? []) names.push(s.name);
  }
  return names;
}

// GET /api/status (what `hubcast status` prints), signed like a REST call.
async function nodeStatus(srv) {
  const url = `${srv.endpoint}/api/status`;
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt({ aud: url, iat: now, exp: now + 300 }, srv.key);
  const r = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, `status of ${srv.endpoint}`);
  return r.json();
}

test("every node's status lists every node with its region and lag, and the lag returns to 0", T, async () => {
  const [a, b, c] = nodes();
  const hub = uniqueHub("lag");
  const onC = await c.newClient(hub, { userId: "cid" }, { protocol: "json" });
  for (let i = 0; i < 50; ++i) await a.serviceClient(hub).sendToAll(`m${i}`, TEXT);
  await onC.rec.wait("server", (m) => m.data === "m49");
  const ids = cluster.nodes.map((n) => n.id).sort();
  for (const srv of [a, b, c]) {
    // Heartbeats carry the lag once a second: every node reports it, and it is 0 when idle.
    await waitUntil(async () => {
      const s = await nodeStatus(srv);
      const seen = s.nodes.map((n) => n.id).sort();
      return JSON.stringify(seen) === JSON.stringify(ids) &&
        s.nodes.every((n) => n.region === "r1" && n.lag === 0);
    }, { timeout: 15000, what: `every node with lag 0 in ${srv.endpoint}'s status` });
  }
});

test("a REST send on node A reaches clients on nodes B and C", T, async () => {
  const [a, b, c] = nodes();
  const hub = uniqueHub("cross");
  const onB = await b.newClient(hub, { userId: "bob" }, { protocol: "json" });
  const onC = await c.newClient(hub, { userId: "cid" }, { protocol: "json" });
  await a.serviceClient(hub).sendToAll("to everyone", TEXT);
  await a.serviceClient(hub).sendToUser("cid", "to cid", TEXT);
  await onB.rec.wait("server", (m) => m.data === "to everyone");
  await onC.rec.wait("server", (m) => m.data === "to everyone");
  await onC.rec.wait("server", (m) => m.data === "to cid");
  await sleep(200);
  assert.equal(onB.rec.all("server").length, 1, "bob got only the broadcast");
});

test("a membership changed on B is used by a send on C, and every node reads it back at once", T, async () => {
  const [a, b, c] = nodes();
  const hub = uniqueHub("member");
  const member = await a.newClient(hub, { userId: "ann" }, { protocol: "json" });
  // Added through B: the client itself is on A.
  await b.serviceClient(hub).group("room").addConnection(member.connectionId);
  await b.serviceClient(hub).group("vip").addUser("ann");
  // Read your writes, on every node, right after the acknowledgement.
  for (const n of [a, b, c]) {
    const sc = n.serviceClient(hub);
    assert.equal(await sc.groupExists("room"), true, `groupExists on ${n.port}`);
    assert.equal(await sc.connectionExists(member.connectionId), true);
    assert.equal(await sc.userExists("ann"), true);
    const listed = [];
    for await (const conn of await sc.group("room").listConnections()) listed.push(conn.connectionId);
    assert.deepEqual(listed, [member.connectionId]);
  }
  await c.serviceClient(hub).group("room").sendToAll("hello room", TEXT);
  await c.serviceClient(hub).group("vip").sendToAll("hello vip", TEXT);
  await member.rec.wait("group", (m) => m.group === "room" && m.data === "hello room");
  await member.rec.wait("group", (m) => m.group === "vip" && m.data === "hello vip");
  // And a removal on C is seen by A.
  await c.serviceClient(hub).group("room").removeConnection(member.connectionId);
  assert.equal(await a.serviceClient(hub).groupExists("room"), false);
});

test("a hub is created only by an authenticated write, and every node then serves it", T, async () => {
  const [a, b, c] = nodes();
  const hub = uniqueHub("lazy");
  // Reads create nothing anywhere.
  assert.equal(await a.serviceClient(hub).groupExists("g"), false);
  assert.equal(await b.serviceClient(hub).connectionExists("nope"), false);
  const anon = await a.rest("GET", `/api/hubs/${hub}/groups/g/connections`);
  assert.equal(anon.status, 200);
  // An unauthenticated handshake creates nothing either.
  const refused = await fetch(`http://127.0.0.1:${b.port}/client/hubs/${hub}`, {
    headers: { connection: "upgrade", upgrade: "websocket", "sec-websocket-version": "13",
               "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" },
  }).catch(() => null);
  if (refused) assert.equal(refused.status, 401);
  assert.ok(!(await streamNames(cluster.nats)).includes(`HUBCAST_${hub}`), "no stream yet");
  // A write on A creates it (a membership remembered for u1's later connections); C, which
  // never saw the hub, serves it at once.
  const put = await a.rest("PUT", `/api/hubs/${hub}/users/u1/groups/g`, { query: { ttl: -1 } });
  assert.equal(put.status, 200);
  assert.ok((await streamNames(cluster.nats)).includes(`HUBCAST_${hub}`));
  const direct = await c.rest("GET", `/api/hubs/${hub}/users/u1/groups`);
  assert.equal(direct.status, 200);
  assert.deepEqual(direct.json.value.map((g) => g.name), ["g"]);
});

test("a connection's reconnection token from one node is accepted by another (same log epoch)", T, async () => {
  const [a, b] = nodes();
  const hub = uniqueHub("epoch");
  const sock = await a.rawClient(hub, { userId: "r" }, "json.reliable.webpubsub.azure.v1");
  assert.ok(sock.reconnectionToken);
  // Reconnect to B with A's token: the session moves, no 1008.
  const url = new URL(`ws://127.0.0.1:${b.port}/client/hubs/${hub}`);
  url.searchParams.set("awps_connection_id", sock.connectionId);
  url.searchParams.set("awps_reconnection_token", sock.reconnectionToken);
  sock.terminate();
  const again = await b.raw(url.toString(), { protocols: "json.reliable.webpubsub.azure.v1" });
  await b.serviceClient(hub).sendToConnection(sock.connectionId, "after the move", TEXT);
  const m = await again.waitJson((j) => j.type === "message");
  assert.equal(m.data, "after the move");
  assert.equal(m.sequenceId, 1);
});
