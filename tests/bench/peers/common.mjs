// What both Node peers share: command-line flags, the HTTP publish endpoint (the peers'
// counterpart of Hubcast's REST sends), the ports file, and a clean exit on SIGTERM.
//
// HTTP publish API (every route answers 202 with an empty body, like Hubcast's sends, and is
// fire-and-forget: an unknown group, connection or user is not an error):
//   POST /api/groups/{group}          body = message, to every connection in the group
//   POST /api/connections/{id}        body = message, to one connection
//   POST /api/users/{user}            body = message, to every connection of the user
// Each request must carry `Authorization: Bearer <secret>` (401 otherwise): an app server's
// endpoint is never open, and Hubcast checks a JWT on every REST call too. Bodies over 1 MiB
// get 413, unknown routes 404. Node keeps the connections alive (its defaults).

import { writeFileSync, renameSync } from "node:fs";

const MAX_BODY_BYTES = 1024 * 1024;

/** Parses `--port-file F --secret S [--recovery]`; exits 2 on anything else. */
export function parseFlags(argv, name) {
  const flags = { portFile: "", secret: "", recovery: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--recovery") {
      flags.recovery = true;
    } else if ((arg === "--port-file" || arg === "--secret") && i + 1 < argv.length) {
      flags[arg === "--port-file" ? "portFile" : "secret"] = argv[++i];
    } else {
      process.stderr.write(`${name}: unknown or incomplete flag ${arg}\n`);
      process.exit(2);
    }
  }
  if (!flags.portFile || !flags.secret) {
    process.stderr.write(`usage: ${name} --port-file F --secret S [--recovery]\n`);
    process.exit(2);
  }
  return flags;
}

/**
 * Returns a `request` listener for the publish routes. `targets` has three functions,
 * group(name, text), connection(id, text) and user(id, text), that deliver the message.
 */
export function publishHandler(secret, targets) {
  const expected = `Bearer ${secret}`;
  return (req, res) => {
    const url = req.url ?? "";
    const match = /^\/api\/(groups|connections|users)\/([^/?]+)$/.exec(url);
    if (req.method !== "POST" || match === null) {
      res.writeHead(404).end();
      return;
    }
    if (req.headers.authorization !== expected) {
      res.writeHead(401).end();
      req.resume();
      return;
    }
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) {
        res.writeHead(413).end();
        return;
      }
      const text = Buffer.concat(chunks).toString("utf8");
      const name = decodeURIComponent(match[2]);
      if (match[1] === "groups") targets.group(name, text);
      else if (match[1] === "connections") targets.connection(name, text);
      else targets.user(name, text);
      res.writeHead(202).end();
    });
  };
}

/** Listens on 127.0.0.1 (a free port) and writes the port to portFile atomically. */
export function listenAndAnnounce(server, portFile, name) {
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address();
    writeFileSync(`${portFile}.tmp`, `${port}\n`);
    renameSync(`${portFile}.tmp`, portFile);
    process.stderr.write(`${name}: listening on 127.0.0.1:${port}\n`);
  });
  const stop = () => process.exit(0);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
