// A Hubcast cluster for the tests: nats-server per region (lib/nats.mjs) and `hubcast serve`
// nodes (lib/server.mjs) pointed at their region's server, all sharing one access key.
//
// startCluster({regions, nodesPerRegion, wanDelayMs, replicas, args}) resolves to
//   {nats, key, nodes: [{id, region, srv, kill9(), restart()}], node(id), addNode(id, r), stop()}
// A node keeps its port and data dir across kill9()/restart(), like a machine that reboots.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { startNatsCluster } from "./nats.mjs";
import { newAccessKey, startServer } from "./server.mjs";

export async function startCluster({
  regions = ["r1"],
  nodesPerRegion = 2,
  wanDelayMs = 0,
  replicas,
  args = [],
} = {}) {
  const nats = await startNatsCluster({ regions, wanDelayMs });
  const key = newAccessKey();
  const dir = mkdtempSync(join(tmpdir(), "hubcast-cluster-"));
  const nodes = [];
  const streamReplicas = String(replicas ?? Math.min(3, regions.length));
  const makeNode = (id, r, natsUrl = nats.servers[r].url) => {
      const region = regions[r];
      const node = {
        id,
        region,
        srv: null,
        dataDir: join(dir, id),
        argv: [
          "--nats", natsUrl,
          "--region", region,
          "--node-id", id,
          "--stream-replicas", streamReplicas,
          "--node-timeout", "3",
          "--reliable-hold", "30",
          ...args,
        ],
        async start(port = 0) {
          // A node waits for JetStream (its streams, a meta leader): give it time.
          node.srv = await startServer({ keys: [key], args: node.argv, dataDir: node.dataDir, port,
                                         startTimeout: 60000 });
          return node.srv;
        },
        async kill9() {
          await node.srv.kill9();
        },
        async restart() {
          const port = node.srv.port;
          await node.start(port);
        },
      };
      return node;
  };
  for (const [r, region] of regions.entries()) {
    for (let i = 1; i <= nodesPerRegion; ++i) nodes.push(makeNode(`${region}-n${i}`, r));
  }
  await Promise.all(nodes.map((n) => n.start()));
  return {
    nats,
    key,
    nodes,
    node: (id) => nodes.find((n) => n.id === id),
    /** A node that joins later, with an empty data dir, in region `regions[r]`; `natsUrl`
     * replaces its region's server (a proxy in front of it, say). */
    async addNode(id, r = 0, { natsUrl } = {}) {
      const node = makeNode(id, r, natsUrl);
      nodes.push(node);
      await node.start();
      return node;
    },
    async stop() {
      for (const n of nodes) {
        // HUBCAST_CLUSTER_LOGS=dir keeps every node's log for a post-mortem.
        if (n.srv && process.env.HUBCAST_CLUSTER_LOGS) {
          writeFileSync(`${process.env.HUBCAST_CLUSTER_LOGS}/${n.id}.log`, n.srv.stderr());
        }
        if (n.srv) await n.srv.stop();
      }
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
