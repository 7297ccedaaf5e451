// A protobuf-subprotocol client written for the tests with protobufjs, from the schema the server
// is built from (server/proto/webpubsub.proto): protobuf.webpubsub.azure.v1 and
// protobuf.reliable.webpubsub.azure.v1 clients exist in no official JavaScript SDK.
//
//   const pb = await loadSchema();
//   const sock = await protoClient(srv, hub, tokenOptions, PROTOBUF_RELIABLE);   // a RawSocket
//   await sock.sendPb({ joinGroupMessage: { group: "g", ackId: 1 } });
//   await sock.waitPb((m) => m.ackMessage?.ackId === 1);
// Every binary frame is decoded into a plain DownstreamMessage object (camelCase field names,
// longs as numbers, bytes as Buffers, `message` naming the oneof member) and recorded under
// "pb" in the socket's Recorder; sock.connectionId / sock.reconnectionToken come from the first
// connected message.

import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

import protobuf from "protobufjs";

export const PROTOBUF = "protobuf.webpubsub.azure.v1";
export const PROTOBUF_RELIABLE = "protobuf.reliable.webpubsub.azure.v1";
export const SCHEMA = join(dirname(fileURLToPath(import.meta.url)), "../../../server/proto/webpubsub.proto");

let schema;
export async function loadSchema() {
  if (!schema) {
    const root = await protobuf.load(SCHEMA);
    schema = {
      root,
      Up: root.lookupType("azure.webpubsub.UpstreamMessage"),
      Down: root.lookupType("azure.webpubsub.DownstreamMessage"),
      Any: root.lookupType("google.protobuf.Any"),
    };
  }
  return schema;
}

export function decodeDown(buf) {
  const { Down } = schema;
  return Down.toObject(Down.decode(buf), { longs: Number, bytes: Buffer, oneofs: true, defaults: false });
}

export function encodeUp(obj) {
  const { Up } = schema;
  const err = Up.verify(obj);
  if (err) throw new Error(`invalid UpstreamMessage ${JSON.stringify(obj)}: ${err}`);
  return Buffer.from(Up.encode(Up.create(obj)).finish());
}

/** The serialized bytes of a google.protobuf.Any. */
export function anyBytes(typeUrl, value) {
  const { Any } = schema;
  return Buffer.from(Any.encode(Any.create({ type_url: typeUrl, value })).finish());
}

/** Teaches a RawSocket to speak protobuf (sendPb / waitPb / pbs). */
export function asProtoSocket(sock) {
  sock.pbs = [];
  const push = sock.rec.push;
  const record = (frame) => {
    let decoded;
    try {
      decoded = decodeDown(frame.data);
    } catch (err) {
      decoded = { undecodable: err.message };
    }
    frame.pb = decoded;
    sock.pbs.push(decoded);
    push.call(sock.rec, "pb", decoded);
  };
  // Frames that came with the upgrade, before this ran.
  for (const frame of sock.frames) if (frame.isBinary) record(frame);
  sock.rec.push = (kind, value) => {
    push.call(sock.rec, kind, value);
    if (kind === "frame" && value.isBinary) record(value);
  };
  sock.sendPb = (obj) => sock.send(encodeUp(obj), { binary: true });
  sock.waitPb = (pred = () => true, timeout = 10000) => sock.rec.wait("pb", pred, timeout);
  sock.waitPbAck = (ackId, timeout = 10000) => sock.waitPb((m) => m.ackMessage && m.ackMessage.ackId === ackId, timeout).then((m) => m.ackMessage);
  sock.dataMessages = () => sock.pbs.filter((m) => m.dataMessage).map((m) => m.dataMessage);
  /** ping -> pong: everything sent before it has been processed. */
  sock.pbRoundTrip = async (timeout = 10000) => {
    const before = sock.pbs.length;
    await sock.sendPb({ pingMessage: {} });
    return sock.waitPb((m) => m.pongMessage && sock.pbs.indexOf(m) >= before, timeout);
  };
  return sock;
}

/**
 * A protobuf client of `hub` with an SDK-minted token; resolves once `connected` arrived. With
 * {recoverFrom: sock}: a recovery of sock's session (no `connected` is awaited: the service need
 * not send one again).
 */
export async function protoClient(srv, hub, tokenOptions = {}, protocol = PROTOBUF, { recoverFrom } = {}) {
  await loadSchema();
  const target = recoverFrom
    ? `${recoverFrom.url}&awps_connection_id=${encodeURIComponent(recoverFrom.connectionId)}` +
      `&awps_reconnection_token=${encodeURIComponent(recoverFrom.reconnectionToken)}`
    : await srv.clientUrl(hub, tokenOptions);
  const sock = asProtoSocket(await srv.raw(target, { protocols: protocol }));
  sock.url = recoverFrom ? recoverFrom.url : target;
  if (recoverFrom) {
    sock.connectionId = recoverFrom.connectionId;
    sock.reconnectionToken = recoverFrom.reconnectionToken;
    return sock;
  }
  const connected = await sock.waitPb((m) => m.systemMessage?.connectedMessage);
  sock.connectionId = connected.systemMessage.connectedMessage.connectionId;
  sock.reconnectionToken = connected.systemMessage.connectedMessage.reconnectionToken;
  return sock;
}

/** Acks (sequenceAck) everything a reliable protobuf client has received so far. */
export async function ackAll(sock) {
  const max = Math.max(0, ...sock.dataMessages().map((d) => d.sequenceId ?? 0));
  if (max > 0) await sock.sendPb({ sequenceAckMessage: { sequenceId: max } });
  return max;
}
