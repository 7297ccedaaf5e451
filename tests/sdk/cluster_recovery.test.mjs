// The cluster when the log is not all there: a node that joins after the hub's stream dropped
// its old entries starts from a snapshot kept in JetStream; with NATS gone, writes fail fast
// (503, error acks) without changing anything and the nodes carry on by themselves once it is
// back.

import assert from "node:assert/strict";
import { test } from "node:test";

import { startCluster } from "./lib/cluster.mjs";
import { startDelayProxy } from "./lib/nats.mjs";
import { uniqueHub } from "./lib/server.mjs";
import { sleep, waitUntil } from "./lib/wait.mjs";

const T = { timeout: 180000 };
const TEXT = { contentType: "text/plain" };

async function streamState(nats, name) {
  const r = await fetch(`http://127.0.0.1:${nats.servers[0].monitorPort}/jsz?streams=true`);
  const j = await r.json();
  for (const acc of j.account_details ?? []) {
    for (const s of acc.stream_detail ?? []) if (s.name === name) return s.state;
  }
  return null;
}

test("a node that joins after the stream dropped old entries serves the hub from a snapshot", T, async () => {
  const cluster = await startCluster({
    regions: ["r1"],
    nodesPerRegion: 2,
    replicas: 1,
    args: ["--stream-max-age", "3s", "--snapshot-seconds", "5", "--log-level", "info"],
  });
  try {
    const [a, b] = cluster.nodes.map((n) => n.srv);
    const hub = uniqueHub("snap");
    const member = await a.newClient(hub, { userId: "ann", groups: ["room"] }, { protocol: "json" });
    const put = await b.rest("PUT", `/api/hubs/${hub}/users/bob/groups/g`, { query: { ttl: -1 } });
    assert.equal(put.status, 200);
    await b.serviceClient(hub).grantPermission(member.connectionId, "sendToGroup", { targetName: "room" });
    // Until the stream has dropped its first entries and a snapshot exists.
    await waitUntil(
      async () => {
        const s = await streamState(cluster.nats, `HUBCAST_${hub}`);
        const snaps = await streamState(cluster.nats, "HUBCAST-SNAPSHOTS");
        return s && s.first_seq > 1 && snaps && snaps.messages > 0;
      },
      { timeout: 30000, what: "the stream to drop its old entries and a snapshot to be saved" },
    );
    // A new node with an empty data dir.
    const c = (await cluster.addNode("r1-late")).srv;

    const sc = c.serviceClient(hub);
    assert.equal(await sc.groupExists("room"), true);
    assert.equal(await sc.connectionExists(member.connectionId), true);
    const ids = [];
    for await (const m of await sc.group("room").listConnections()) ids.push(m.connectionId);
    assert.deepEqual(ids, [member.connectionId]);
    const groups = await c.rest("GET", `/api/hubs/${hub}/users/bob/groups`);
    assert.deepEqual(groups.json.value.map((g) => g.name), ["g"]);
    assert.equal(
      await sc.hasPermission(member.connectionId, "sendToGroup", { targetName: "room" }),
      true,
    );
    // And it serves new traffic to a connection held by another node.
    await sc.group("room").sendToAll("from the late node", TEXT);
    await member.rec.wait("group", (m) => m.data === "from the late node");
    assert.match(c.stderr(), /starting from the snapshot at position/);
  } finally {
    await cluster.stop();
  }
});

test("with NATS gone, writes fail within a second and change nothing; the nodes recover alone", T, async () => {
  const cluster = await startCluster({ regions: ["r1"], nodesPerRegion: 2, replicas: 1 });
  try {
    const [a, b] = cluster.nodes.map((n) => n.srv);
    const hub = uniqueHub("outage");
    const onA = await a.newClient(hub, { userId: "ann", roles: ["webpubsub.joinLeaveGroup"] });
    const onB = await b.newClient(hub, { userId: "bob" }, { protocol: "json" });
    await a.serviceClient(hub).sendToAll("before", TEXT);
    await onB.rec.wait("server", (m) => m.data === "before");

    await cluster.nats.servers[0].kill9();
    const killedAt = Date.now();
    // REST writes: 503 with Retry-After, fast.
    let first503 = null;
    for (let i = 0; i < 20; ++i) {
      const started = Date.now();
      const r = await a.rest("POST", `/api/hubs/${hub}/:send`, { body: "during", contentType: "text/plain" });
      if (r.status === 503) {
        assert.equal(r.headers.get("retry-after"), "1");
        assert.ok(Date.now() - started < 1000, `a 503 took ${Date.now() - started} ms`);
        first503 ??= Date.now() - killedAt;
        break;
      }
      await sleep(50);
    }
    assert.ok(first503 !== null && first503 < 1000, `the first 503 came ${first503} ms after NATS died`);
    // A client action: an error ack, and the group is not joined.
    await assert.rejects(onA.client.joinGroup("during"), /InternalServerError|ack|error/i);
    const membership = await b.rest("PUT", `/api/hubs/${hub}/groups/g2/connections/${onB.connectionId}`);
    assert.equal(membership.status, 503);
    // Connections stay up meanwhile.
    await sleep(10000);
    assert.equal(onA.rec.all("disconnected").length, 0);
    assert.equal(onB.rec.all("disconnected").length, 0);

    await cluster.nats.servers[0].start();
    // Full service again, without any operator action.
    await waitUntil(
      async () => (await a.rest("POST", `/api/hubs/${hub}/:send`, { body: "after", contentType: "text/plain" })).status === 202,
      { timeout: 30000, what: "writes to succeed again" },
    );
    await onB.rec.wait("server", (m) => m.data === "after", 15000);
    await onA.rec.wait("server", (m) => m.data === "after", 15000);
    // Nothing from the outage was half-applied.
    assert.equal(await b.serviceClient(hub).groupExists("during"), false);
    assert.equal(await a.serviceClient(hub).groupExists("g2"), false);
    assert.equal(onB.rec.all("server").filter((m) => m.data === "during").length, 0);
    await onA.client.joinGroup("later");
    assert.equal(await b.serviceClient(hub).groupExists("later"), true);
    console.log(`[ nats outage ] first 503 after ${first503} ms`);
  } finally {
    await cluster.stop();
  }
});

test("a node cut off from NATS past the node timeout is declared dead; when the partition heals it drops its sockets, and its reliable client resumes with nothing lost", T, async () => {
  const cluster = await startCluster({ regions: ["r1"], nodesPerRegion: 1, replicas: 1 });
  let proxy;
  try {
    const a = cluster.nodes[0].srv;
    proxy = await startDelayProxy(cluster.nats.servers[0].port, 0);
    const c = (await cluster.addNode("r1-cut", 0, { natsUrl: `nats://127.0.0.1:${proxy.port}` })).srv;
    const hub = uniqueHub("partition");
    const sc = a.serviceClient(hub);
    await sc.sendToAll("create", TEXT);
    const reliable = await c.newClient(hub, { userId: "rel", groups: ["g"] });
    const plain = await c.newClient(hub, { userId: "plain", groups: ["g"] }, { protocol: "json" });
    await sc.group("g").sendToAll("m0", TEXT);
    await reliable.rec.wait("group", (m) => m.data === "m0", 15000);
    await plain.rec.wait("group", (m) => m.data === "m0", 15000);

    proxy.block();
    // Past the node timeout (3 s) the other node reports the cut one down; sends go on.
    const sent = [];
    for (let i = 1; i <= 40; ++i) {
      await sc.group("g").sendToAll(`m${i}`, TEXT);
      sent.push(`m${i}`);
      await sleep(200);
    }
    proxy.unblock();
    // Back on NATS, the cut node applies its own `node down`: the plain client's socket goes,
    // the reliable client resumes (its session was held) and has every message exactly once.
    await plain.rec.wait("disconnected", () => true, 30000);
    await waitUntil(() => sent.every((d) => reliable.rec.all("group").some((m) => m.data === d)), {
      timeout: 30000,
      what: () => `the reliable client to have m1..m40 (has ${reliable.rec.all("group").length})`,
    });
    const data = reliable.rec.all("group").map((m) => m.data);
    assert.deepEqual(data, ["m0", ...sent], "in order, exactly once");
    const seqs = reliable.rec.all("group").map((m) => m.sequenceId);
    for (let k = 1; k < seqs.length; ++k) assert.equal(seqs[k], seqs[k - 1] + 1);
    assert.equal(reliable.rec.all("connected").length, 1, "the reliable session was not replaced");
  } finally {
    await cluster.stop();
    if (proxy) await proxy.close();
  }
});
