// The `ws` peer: a plain WebSocket server written the way a Node app usually is (the `ws`
// package, a Map of rooms, one JSON text frame per message), with the same features Hubcast is
// measured on. Started by tests/bench/compare.sh:
//
//   node ws_server.mjs --port-file F --secret S
//
// Clients connect to ws://127.0.0.1:PORT/?user=U&groups=G1,G2,... and are put in those groups
// (the counterpart of a Hubcast token's `sub` and `webpubsub.group` claims). The server then
// sends {"type":"connected","connectionId":ID,"userId":U}.
// Client to server (text frames, JSON):
//   {"type":"sendToGroup","group":G,"ackId":N,"data":TEXT} -> the group gets the message and the
//   sender {"type":"ack","ackId":N} (no ack without ackId)
// Server to client: {"type":"message","group":G|null,"data":TEXT}, encoded once per publish and
// the same bytes written to every member.
// HTTP publish routes: see common.mjs.

import { createServer } from "node:http";

import { WebSocketServer } from "ws";

import { listenAndAnnounce, parseFlags, publishHandler } from "./common.mjs";

const flags = parseFlags(process.argv.slice(2), "ws_server");

const groups = new Map(); // group name -> Set of sockets
const users = new Map(); // user id -> Set of sockets
const connections = new Map(); // connection id -> socket
let nextConnectionId = 1;

function addTo(map, key, socket) {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  set.add(socket);
}

function removeFrom(map, key, socket) {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(socket);
  if (set.size === 0) map.delete(key);
}

function encode(group, text) {
  return Buffer.from(JSON.stringify({ type: "message", group, data: text }));
}

function sendAll(sockets, group, text) {
  if (sockets === undefined) return;
  const frame = encode(group, text);
  for (const socket of sockets) socket.send(frame, { binary: false });
}

const server = createServer(
  publishHandler(flags.secret, {
    group: (name, text) => sendAll(groups.get(name), name, text),
    connection: (id, text) => {
      const socket = connections.get(id);
      if (socket !== undefined) socket.send(encode(null, text), { binary: false });
    },
    user: (id, text) => sendAll(users.get(id), null, text),
  }),
);

const wss = new WebSocketServer({ server });
wss.on("connection", (socket, req) => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  const user = url.searchParams.get("user") ?? "";
  const joined = (url.searchParams.get("groups") ?? "").split(",").filter((g) => g !== "");
  const id = String(nextConnectionId++);
  connections.set(id, socket);
  if (user !== "") addTo(users, user, socket);
  for (const group of joined) addTo(groups, group, socket);

  socket.on("message", (data, isBinary) => {
    if (isBinary) return;
    let message;
    try {
      message = JSON.parse(data.toString());
    } catch {
      socket.close(1003, "not JSON");
      return;
    }
    if (message.type !== "sendToGroup" || typeof message.group !== "string") return;
    sendAll(groups.get(message.group), message.group, String(message.data));
    if (message.ackId !== undefined) {
      socket.send(JSON.stringify({ type: "ack", ackId: message.ackId }));
    }
  });
  socket.on("close", () => {
    connections.delete(id);
    if (user !== "") removeFrom(users, user, socket);
    for (const group of joined) removeFrom(groups, group, socket);
  });
  socket.on("error", () => {});
  socket.send(JSON.stringify({ type: "connected", connectionId: id, userId: user }));
});

listenAndAnnounce(server, flags.portFile, "ws_server");
