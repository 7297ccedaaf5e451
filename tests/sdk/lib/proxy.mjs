// A TCP proxy for tests that need an abrupt network failure between a client and the server.

import net from "node:net";

/**
 * A TCP proxy on 127.0.0.1:0 forwarding to 127.0.0.1:targetPort. cut() destroys every open
 * socket on both sides at once (an abrupt network failure) and returns how many pairs it cut.
 */
export async function startProxy(targetPort) {
  const pairs = new Set();
  const stats = { accepted: 0, cuts: [] };
  const server = net.createServer((down) => {
    stats.accepted += 1;
    const up = net.connect(targetPort, "127.0.0.1");
    const pair = { down, up };
    pairs.add(pair);
    const forget = () => {
      if (down.destroyed && up.destroyed) pairs.delete(pair);
    };
    down.on("error", () => up.destroy());
    up.on("error", () => down.destroy());
    down.on("close", () => {
      up.destroy();
      forget();
    });
    up.on("close", () => {
      // let what the server sent last drain to the client before closing it
      down.end();
      setTimeout(() => down.destroy(), 1000).unref();
      forget();
    });
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    port: server.address().port,
    stats,
    open: () => pairs.size,
    cut(label = "") {
      const n = pairs.size;
      for (const { down, up } of pairs) {
        down.destroy();
        up.destroy();
      }
      pairs.clear();
      stats.cuts.push({ label, pairs: n, at: Date.now() });
      return n;
    },
    async close() {
      for (const { down, up } of pairs) {
        down.destroy();
        up.destroy();
      }
      pairs.clear();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
