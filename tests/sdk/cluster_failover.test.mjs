// A node dies (kill -9) in the middle of a 10,000-message stream. Its reliable clients, behind
// a balancer as in production, resume on another node and get every message exactly once, in
// order, with their sequence ids; its other clients' `disconnected` reaches the app's event
// handler exactly once each, from a surviving node.

import assert from "node:assert/strict";
import { test } from "node:test";

import { WebPubSubClient } from "@azure/web-pubsub-client";

import { startCluster } from "./lib/cluster.mjs";
import { startBalancer } from "./lib/nats.mjs";
import { uniqueHub } from "./lib/server.mjs";
import { startUpstream } from "./lib/upstream.mjs";
import { sleep, waitUntil, withDeadline } from "./lib/wait.mjs";

const T = { timeout: 300000 };
const TEXT = { contentType: "text/plain" };

test("kill -9 of a node: its reliable clients resume elsewhere exactly once, in order; disconnected fires once", T, async () => {
  const up = await startUpstream();
  const hub = uniqueHub("failover");
  const handler = up.handler(hub);
  const cluster = await startCluster({
    regions: ["r1"],
    nodesPerRegion: 3,
    replicas: 1,
    args: ["--event-handler", `${hub}=${up.template}`],
  });
  const clients = [];
  let lb;
  try {
    const [a, b, c] = cluster.nodes.map((n) => n.srv);
    lb = await startBalancer([a.port, b.port, c.port]);
    const sc = b.serviceClient(hub);
    let killedAt = null;
    let firstSentAfterKill = Infinity;  // messages from here on were sent after A died
    // Reliable clients, through the balancer: all land on A.
    const R = 4;
    const logs = [];
    for (let i = 0; i < R; ++i) {
      const client = new WebPubSubClient(
        {
          getClientAccessUrl: async () => {
            const url = new URL((await sc.getClientAccessToken({ userId: `r${i}`, groups: ["stream"] })).url);
            url.port = String(lb.port);
            return url.toString();
          },
        },
        { messageRetryOptions: { maxRetries: 0 } },
      );
      const log = { connected: [], messages: [], firstAfterKill: null };
      client.on("connected", (e) => log.connected.push(e.connectionId));
      client.on("group-message", (e) => {
        log.messages.push({ data: Number(e.message.data), seq: e.message.sequenceId });
        if (Number(e.message.data) >= firstSentAfterKill && log.firstAfterKill === null) {
          log.firstAfterKill = Date.now();
        }
      });
      await client.start();
      await waitUntil(() => log.connected.length === 1, { what: `reliable client ${i} to connect` });
      clients.push(client);
      logs.push(log);
    }
    // Plain JSON clients on A.
    const plain = [];
    for (let i = 0; i < 5; ++i) plain.push(await a.newClient(hub, { userId: `p${i}` }, { protocol: "json" }));
    await waitUntil(() => handler.rec.all("connected").length === R + plain.length, {
      what: "every connected event",
    });

    const N = 10000;
    let acked = 0;
    let next = 0;
    const killAt = 3000;
    const worker = async () => {
      while (next < N) {
        const i = next++;
        for (let attempt = 0; ; ++attempt) {
          try {
            await sc.group("stream").sendToAll(String(i), TEXT);
            break;
          } catch (e) {
            if (attempt > 100) throw e;
            await sleep(50);
          }
        }
        acked += 1;
        if (acked === killAt) {
          killedAt = Date.now();
          firstSentAfterKill = next;
          await cluster.nodes[0].kill9();
          lb.setBackends([b.port, c.port]);
        }
      }
    };
    await withDeadline(Promise.all(Array.from({ length: 32 }, worker)), 120000, "10,000 REST sends");
    await waitUntil(() => logs.every((l) => l.messages.length >= N), {
      timeout: 60000,
      what: () => `every reliable client to have ${N} messages (${logs.map((l) => l.messages.length)})`,
    });
    await sleep(1000);
    for (const [i, log] of logs.entries()) {
      const data = log.messages.map((m) => m.data);
      assert.equal(data.length, N, `client ${i}: ${data.length} messages`);
      assert.equal(new Set(data).size, N, `client ${i}: duplicates`);
      const seqs = log.messages.map((m) => m.seq);
      for (let k = 1; k < seqs.length; ++k) {
        assert.equal(seqs[k], seqs[k - 1] + 1, `client ${i}: sequence ids go 1, 2, 3 (at ${k})`);
      }
      assert.equal(log.connected.length, 1, `client ${i} kept its connection (no new one)`);
    }
    // Each plain client of the dead node: `disconnected` exactly once.
    await waitUntil(
      () => plain.every((p) => handler.rec.all("disconnected").some((d) => d.request.context.connectionId === p.connectionId)),
      { timeout: 30000, what: "a disconnected event for every plain client of the dead node" },
    );
    await sleep(3000);  // a second report would come within this
    for (const p of plain) {
      const n = handler.rec.all("disconnected").filter((d) => d.request.context.connectionId === p.connectionId).length;
      assert.equal(n, 1, `disconnected events for ${p.connectionId}`);
    }
    // None for the reliable sessions, which live on.
    for (const log of logs) {
      assert.equal(handler.rec.all("disconnected").filter((d) => d.request.context.connectionId === log.connected[0]).length, 0);
    }
    const recoveries = logs.map((l) => l.firstAfterKill - killedAt).sort((x, y) => x - y);
    console.log(`[ failover ] reliable clients got the first message sent after the kill ` +
                `${recoveries.join(", ")} ms after it (resumed on another node)`);
  } finally {
    for (const c of clients) c.stop();
    if (lb) await lb.close();
    await cluster.stop();
    await up.close();
  }
});
