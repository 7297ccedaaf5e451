// Shared assertions: a healthy-server probe, sentinels that prove delivery order, SDK errors.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { uniqueHub } from "./server.mjs";

/** The server still serves: a new SDK client connects and gets a REST message; health is 200. */
export async function assertHealthy(srv, label = "after bad input") {
  assert.ok(srv.alive(), `hubcast process died ${label}\n${srv.output()}`);
  const hub = uniqueHub("healthy");
  const c = await srv.newClient(hub, { userId: "healthy-user" }, { protocol: "json" });
  const token = randomUUID();
  await srv.serviceClient(hub).sendToConnection(c.connectionId, { healthy: token });
  await c.rec.wait("server", (m) => m.data && m.data.healthy === token, 10000);
  const health = await srv.rest("HEAD", "/api/health", { auth: false });
  assert.equal(health.status, 200, `HEAD /api/health ${label}`);
  c.client.stop();
}

/**
 * Sends a sentinel to an SDK client's connection and waits for it; everything the server sent
 * the client before the sentinel has then arrived (per-connection order).
 */
export async function syncClient(srv, c) {
  const token = randomUUID();
  await srv.serviceClient(c.hub).sendToConnection(c.connectionId, { sentinel: token });
  await c.rec.wait("server", (m) => m.data && m.data.sentinel === token, 10000);
}

/** Same for a raw JSON-subprotocol socket with a connectionId. */
export async function syncRaw(srv, hub, sock) {
  const token = randomUUID();
  await srv.serviceClient(hub).sendToConnection(sock.connectionId, { sentinel: token });
  await sock.waitJson((m) => m.type === "message" && m.data && m.data.sentinel === token, 10000);
}

/** Group messages (data objects) the SDK client received, without sentinels. */
export function groupData(c, group) {
  return c.rec.all("group").filter((m) => group === undefined || m.group === group).map((m) => m.data);
}

export function serverData(c) {
  return c.rec.all("server").map((m) => m.data).filter((d) => !(d && d.sentinel));
}

/** Awaits an SDK operation expected to fail with an ack error; returns errorDetail. */
export async function expectAckError(promise, name) {
  let err;
  try {
    const result = await promise;
    assert.fail(`expected ack error ${name}, but the operation succeeded: ${JSON.stringify(result)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.ok(err.errorDetail, `expected a SendMessageError with errorDetail, got ${err && err.stack}`);
  assert.equal(err.errorDetail.name, name, `ack error name (message: ${err.errorDetail.message})`);
  return err.errorDetail;
}

export const toBuf = (ab) => Buffer.from(ab instanceof ArrayBuffer ? new Uint8Array(ab) : ab);
