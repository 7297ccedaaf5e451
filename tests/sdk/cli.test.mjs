// `hubcast token` and `hubcast send` (server/cli.h, built on the C++ service SDK) against a real
// server, judged by Microsoft's official client: a WebPubSubClient connects with the URL that
// `hubcast token` printed and receives what `hubcast send` sent. Errors print the service's
// status and message and exit non-zero.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, test } from "node:test";

import { WebPubSubClient } from "@azure/web-pubsub-client";

import { syncClient, toBuf } from "./lib/checks.mjs";
import { decodeJwt } from "./lib/jwt.mjs";
import { newAccessKey, startServer, uniqueHub, uniqueName } from "./lib/server.mjs";
import { Recorder, withDeadline } from "./lib/wait.mjs";

const T = { timeout: 30000 };
let srv;
const clients = new Set();

before(async () => {
  srv = await startServer();
});
afterEach(async () => {
  for (const c of clients) c.stop();
  clients.clear();
});
after(async () => srv && srv.stop());

/** Runs `hubcast ARGS` with the server's connection string in the environment. */
function hubcast(args, { env = {}, input } = {}) {
  const child = spawn(process.env.HUBCAST_BINARY, args, {
    env: { ...process.env, HUBCAST_CONNECTION_STRING: srv.connectionString, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  child.stdin.end(input ?? "");
  const done = new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  return withDeadline(done, 20000, `hubcast ${args.join(" ")}`);
}

async function send(args, options) {
  const r = await hubcast(["send", ...args], options);
  assert.equal(r.code, 0, `hubcast send ${args.join(" ")}: ${r.stderr}`);
}

/** `hubcast token ARGS` → the URL it printed (one line). */
async function token(args) {
  const r = await hubcast(["token", ...args]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ws:\/\/127\.0\.0\.1:\d+\/client\/hubs\/[^?]+\?access_token=[\w-]+\.[\w-]+\.[\w-]+\n$/);
  return r.stdout.trim();
}

/** An official client started with `url`, recording what it receives. */
async function connect(url, hub) {
  const client = new WebPubSubClient(url, { messageRetryOptions: { maxRetries: 0 } });
  clients.add(client);
  const rec = new Recorder("cli client");
  client.on("connected", (e) => rec.push("connected", e));
  client.on("group-message", (e) => rec.push("group", e.message));
  client.on("server-message", (e) => rec.push("server", e.message));
  await client.start();
  const connected = await rec.wait("connected");
  return { client, rec, hub, connectionId: connected.connectionId, userId: connected.userId };
}

const hasServerData = (c, pred) => c.rec.all("server").some((m) => pred(m.data));

test("cli: hubcast token prints a URL the official client connects with, carrying user, roles, groups and lifetime", T, async () => {
  const hub = uniqueHub("cli");
  const url = await token(["--hub", hub, "--user", "alice", "--role", "webpubsub.joinLeaveGroup",
    "--role", "webpubsub.sendToGroup", "--group", "g1", "--minutes", "5"]);
  const { payload } = decodeJwt(new URL(url).searchParams.get("access_token"));
  assert.equal(payload.sub, "alice");
  assert.deepEqual(payload.role, ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]);
  assert.deepEqual(payload["webpubsub.group"], ["g1"]);
  assert.equal(payload.exp - payload.iat, 300);
  assert.equal(payload.aud, `${srv.endpoint}/client/hubs/${hub}`);

  const alice = await connect(url, hub);
  assert.equal(alice.userId, "alice");
  assert.equal(await srv.serviceClient(hub).group("g1").listConnections().then(async (it) => {
    const ids = [];
    for await (const m of it) ids.push(m.connectionId);
    return ids.join(",");
  }), alice.connectionId, "the token's group was joined");
  await alice.client.joinGroup("g2"); // the token's roles allow it
  await alice.client.sendToGroup("g2", "from alice", "text");
  await alice.rec.wait("group", (m) => m.group === "g2" && m.data === "from alice");
});

test("cli: hubcast token without --user gives an anonymous client", T, async () => {
  const hub = uniqueHub("cli");
  const url = await token(["--hub", hub]);
  const { payload } = decodeJwt(new URL(url).searchParams.get("access_token"));
  assert.equal(payload.sub, undefined);
  assert.equal(payload.exp - payload.iat, 3600);
  const anonymous = await connect(url, hub);
  assert.ok(!anonymous.userId);
});

test("cli: hubcast send delivers TEXT, @FILE and - to the hub, a group, a user and a connection", T, async () => {
  const hub = uniqueHub("cli");
  const alice = await connect(await token(["--hub", hub, "--user", "alice", "--group", "g1"]), hub);

  await send(["--hub", hub, "hello everyone"]);
  await alice.rec.wait("server", (m) => m.dataType === "text" && m.data === "hello everyone");

  await send(["--hub", hub, "--group", "g1", "hello g1"]);
  await alice.rec.wait("group", (m) => m.group === "g1" && m.data === "hello g1");

  await send(["--hub", hub, "--user", "alice", "--type", "json", '{"n":1}']);
  await alice.rec.wait("server", (m) => m.dataType === "json" && m.data && m.data.n === 1);

  const file = join(srv.dir, `${uniqueName("payload")}.bin`);
  writeFileSync(file, Buffer.from([0, 1, 2, 255]));
  await send(["--hub", hub, "--connection", alice.connectionId, "--type", "binary", `@${file}`]);
  await alice.rec.wait("server", (m) => m.dataType === "binary" && toBuf(m.data).equals(Buffer.from([0, 1, 2, 255])));

  await send(["--hub", hub, "--ttl", "60", "-"], { input: "from stdin\nline two" });
  await alice.rec.wait("server", (m) => m.data === "from stdin\nline two");
});

test("cli: hubcast send --filter and --exclude choose the recipients", T, async () => {
  const hub = uniqueHub("cli");
  const alice = await connect(await token(["--hub", hub, "--user", "alice"]), hub);
  const bob = await connect(await token(["--hub", hub, "--user", "bob"]), hub);

  await send(["--hub", hub, "--filter", "userId eq 'bob'", "only bob"]);
  await bob.rec.wait("server", (m) => m.data === "only bob");
  await send(["--hub", hub, "--exclude", bob.connectionId, "not bob"]);
  await alice.rec.wait("server", (m) => m.data === "not bob");
  await syncClient(srv, alice);
  await syncClient(srv, bob);
  assert.ok(!hasServerData(alice, (d) => d === "only bob"), "the filter let alice in");
  assert.ok(!hasServerData(bob, (d) => d === "not bob"), "--exclude did not exclude bob");
});

test("cli: errors print the service's status and message and exit non-zero", T, async () => {
  const hub = uniqueHub("cli");
  let r = await hubcast(["send", "--hub", hub, "--filter", "userId eq", "x"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^hubcast send: 400 BadRequest: Invalid filter/);

  r = await hubcast(["send", "--hub", hub, "--type", "json", "{not json"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /400 BadRequest: The body is not valid JSON/);

  const wrongKey = `Endpoint=${srv.endpoint};AccessKey=${newAccessKey()};Version=1.0;`;
  r = await hubcast(["send", "--hub", hub, "--connection-string", wrongKey, "x"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /401 Unauthorized: Invalid access token/);

  r = await hubcast(["send", "--hub", hub, "x"], { env: { HUBCAST_CONNECTION_STRING: "Endpoint=http://127.0.0.1:1;AccessKey=k" } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TransportError/);

  r = await hubcast(["token", "--hub", hub], { env: { HUBCAST_CONNECTION_STRING: "" } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /HUBCAST_CONNECTION_STRING/);
  assert.equal(r.stdout, "");

  r = await hubcast(["send", "--hub", hub, "--group", "g", "--user", "u", "x"]);
  assert.equal(r.code, 2);
});
