// The Socket.IO 4 peer: rooms, acknowledgements and (with --recovery) connection state
// recovery, the Socket.IO features that match what Hubcast is measured on. Started by
// tests/bench/compare.sh:
//
//   node socketio_server.mjs --port-file F --secret S [--recovery]
//
// Clients speak Engine.IO v4 over WebSocket only (/socket.io/?EIO=4&transport=websocket) and
// connect to the main namespace with auth {"user":U,"groups":[G1,...]}: the socket joins those
// rooms and the room "user:U" (the counterpart of a Hubcast token's `sub` and
// `webpubsub.group` claims).
// Client to server: the event "send" (group, text) with an acknowledgement callback; the group
// gets the event "m" (group, text) and the sender its ack.
// Server to client: the event "m" (group or null, text); Socket.IO encodes a room broadcast once.
// --recovery turns on connectionStateRecovery (30 s, like Hubcast's --reliable-hold): every
// broadcast then carries an offset and is kept for clients that come back, Socket.IO's
// counterpart of Hubcast's reliable subprotocol.
// HTTP publish routes: see common.mjs.

import { createServer } from "node:http";

import { Server } from "socket.io";

import { listenAndAnnounce, parseFlags, publishHandler } from "./common.mjs";

const flags = parseFlags(process.argv.slice(2), "socketio_server");

const server = createServer(
  publishHandler(flags.secret, {
    group: (name, text) => io.to(name).emit("m", name, text),
    connection: (id, text) => io.to(id).emit("m", null, text),
    user: (id, text) => io.to(`user:${id}`).emit("m", null, text),
  }),
);

const io = new Server(server, {
  transports: ["websocket"],
  serveClient: false,
  connectionStateRecovery: flags.recovery
    ? { maxDisconnectionDuration: 30000, skipMiddlewares: true }
    : undefined,
});

io.on("connection", (socket) => {
  const auth = socket.handshake.auth ?? {};
  const rooms = Array.isArray(auth.groups) ? auth.groups.map(String) : [];
  if (typeof auth.user === "string" && auth.user !== "") rooms.push(`user:${auth.user}`);
  socket.join(rooms);
  socket.on("send", (group, text, ack) => {
    if (typeof group === "string") io.to(group).emit("m", group, String(text));
    if (typeof ack === "function") ack();
  });
});

listenAndAnnounce(server, flags.portFile, "socketio_server");
