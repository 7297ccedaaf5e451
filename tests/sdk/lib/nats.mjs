// Real nats-server processes for the cluster tests: one server, or a JetStream cluster of one
// server per "region" (server_tags region:<name>, unique_tag region: so an R3 stream keeps a
// replica in each region), on free loopback ports, optionally with every route between
// regions passing through a delaying TCP proxy (the kernel here has no netem).
//
// startNatsCluster({regions, wanDelayMs}) resolves to
//   {servers: [{name, region, port, url, stop(), kill9(), start()}], urls(), stop()}
// A server can be killed and started again on the same ports and store (a region comes back).

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const live = new Set();
process.on("exit", () => {
  for (const c of live) {
    try {
      c.kill("SIGKILL");
    } catch {
      // gone
    }
  }
});

/** A free loopback port (bound then released: a race is possible but harmless here). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * A TCP proxy that forwards every chunk, in each direction, `delayMs` later (order kept).
 * Returns {port, close(), cutAll()}.
 */
export async function startDelayProxy(targetPort, delayMs, listenPort = 0) {
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = createConnection({ port: targetPort, host: "127.0.0.1" });
    sockets.add(client);
    sockets.add(upstream);
    const pipe = (from, to) => {
      from.on("data", (chunk) => setTimeout(() => to.writable && to.write(chunk), delayMs));
      from.on("end", () => setTimeout(() => to.end(), delayMs));
      from.on("error", () => to.destroy());
      from.on("close", () => {
        sockets.delete(from);
        setTimeout(() => to.destroy(), delayMs);
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise((resolve) => server.listen(listenPort, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    cutAll() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

function serverConfig({ name, region, port, clusterPort, routes, storeDir, monitorPort }) {
  return `
server_name: ${name}
listen: 127.0.0.1:${port}
http: 127.0.0.1:${monitorPort}
max_payload: 8MB
server_tags: ["region:${region}"]
jetstream {
  store_dir: "${storeDir}"
  max_memory_store: 256MB
  max_file_store: 2GB
  unique_tag: "region:"
}
cluster {
  name: hubcast-test
  listen: 127.0.0.1:${clusterPort}
  routes: [${routes.map((r) => `"nats-route://127.0.0.1:${r}"`).join(", ")}]
}
`;
}

/**
 * Starts one nats-server per region in one JetStream cluster. With wanDelayMs, the route from
 * each server to every other one goes through a delay proxy.
 */
export async function startNatsCluster({ regions = ["r1"], wanDelayMs = 0 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "hubcast-nats-"));
  const specs = [];
  for (const region of regions) {
    specs.push({
      name: `nats-${region}`,
      region,
      port: await freePort(),
      clusterPort: await freePort(),
      monitorPort: await freePort(),
    });
  }
  const proxies = [];
  for (const spec of specs) {
    spec.routes = [];
    for (const other of specs) {
      if (other === spec) continue;
      if (wanDelayMs > 0) {
        const p = await startDelayProxy(other.clusterPort, wanDelayMs);
        proxies.push(p);
        spec.routes.push(p.port);
      } else {
        spec.routes.push(other.clusterPort);
      }
    }
    spec.storeDir = join(dir, spec.name);
    mkdirSync(spec.storeDir, { recursive: true });
    spec.configFile = join(dir, `${spec.name}.conf`);
    writeFileSync(spec.configFile, specs.length > 1 ? serverConfig(spec) : singleConfig(spec));
  }
  const servers = specs.map((spec) => makeServer(spec));
  for (const s of servers) await s.start();
  if (specs.length > 1) await waitForMetaLeader(servers);
  return {
    servers,
    urls: () => servers.map((s) => s.url).join(","),
    async stop() {
      for (const s of servers) await s.stop();
      for (const p of proxies) await p.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function singleConfig({ name, port, storeDir, monitorPort }) {
  return `
server_name: ${name}
listen: 127.0.0.1:${port}
http: 127.0.0.1:${monitorPort}
max_payload: 8MB
jetstream { store_dir: "${storeDir}", max_memory_store: 256MB, max_file_store: 2GB }
`;
}

function makeServer(spec) {
  let child = null;
  let log = "";
  let exited = null;
  const server = {
    name: spec.name,
    region: spec.region,
    port: spec.port,
    monitorPort: spec.monitorPort,
    url: `nats://127.0.0.1:${spec.port}`,
    log: () => log,
    async start() {
      child = spawn("nats-server", ["-c", spec.configFile], { stdio: ["ignore", "pipe", "pipe"] });
      live.add(child);
      child.stdout.on("data", (d) => (log += d));
      child.stderr.on("data", (d) => (log += d));
      exited = new Promise((r) =>
        child.on("exit", () => {
          live.delete(child);
          r();
        }),
      );
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline) {
        if (await healthy(spec.monitorPort)) return;
        await sleep(100);
      }
      throw new Error(`nats-server ${spec.name} did not become healthy:\n${log}`);
    },
    async kill9() {
      if (!child) return;
      child.kill("SIGKILL");
      await exited;
      child = null;
    },
    async stop() {
      if (!child) return;
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(5000)]);
      if (child) child.kill("SIGKILL");
      await exited;
      child = null;
    },
  };
  return server;
}

async function healthy(monitorPort) {
  try {
    const r = await fetch(`http://127.0.0.1:${monitorPort}/healthz`);
    return r.ok;
  } catch {
    return false;
  }
}

async function waitForMetaLeader(servers) {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${servers[0].monitorPort}/jsz`);
      const j = await r.json();
      if (j.meta_cluster && j.meta_cluster.leader && (j.meta_cluster.cluster_size ?? 0) >= servers.length) {
        return;
      }
    } catch {
      // not yet
    }
    await sleep(200);
  }
  throw new Error("the JetStream cluster elected no meta leader within 30 s");
}

/**
 * A front for clients, as a load balancer would be: each new TCP connection goes to the first
 * backend (in order, starting at `preferred`) that accepts it. Returns {port, setBackends(),
 * close()}.
 */
export async function startBalancer(backendPorts) {
  let backends = [...backendPorts];
  const sockets = new Set();
  const server = createServer((client) => {
    sockets.add(client);
    client.pause();
    const tryNext = (i) => {
      if (i >= backends.length) {
        client.destroy();
        return;
      }
      const upstream = createConnection({ port: backends[i], host: "127.0.0.1" });
      upstream.once("error", () => tryNext(i + 1));
      upstream.once("connect", () => {
        upstream.removeAllListeners("error");
        sockets.add(upstream);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        const end = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on("error", end);
        upstream.on("error", end);
        client.on("close", end);
        upstream.on("close", end);
      });
    };
    tryNext(0);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    setBackends(ports) {
      backends = [...ports];
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

