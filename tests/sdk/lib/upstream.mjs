// A local event-handler application for the upstream tests: an express app on 127.0.0.1:0 that
// hosts one @azure/web-pubsub-express WebPubSubEventHandler per hub, each scripted by the test.
//
//   const up = await startUpstream();           // express app, port chosen by the OS ({port} to fix it)
//   up.template                                  // http://127.0.0.1:PORT/api/webpubsub/hubs/{hub}/
//   const h = up.handler(hub, options);          // mounts new WebPubSubEventHandler(hub, ...)
//   h.script.handleConnect = (req, res) => ...;  // per test; defaults: the SDK's own answers
//   await h.rec.wait("connected", (r) => r.context.connectionId === id);
//   await up.close();
//
// An express middleware placed before the handlers records every request that reaches the app
// (method, URL, all headers, arrival time) in up.requests and in the matching handler's
// h.requests, and lets h.script.intercept(req, res, entry) answer a request itself (return true)
// before the SDK sees it (503s for retries, slow answers, ...). The SDK callbacks record
// {kind: "connect"|"connected"|"disconnected"|"user"|"joined"|"left", request: <the SDK's
// request object>,
// http: <the recorded entry of the HTTP request that carried it>} in h.rec under their kind and
// under "event"; the HTTP entry is found through AsyncLocalStorage, so headers and parsed
// payload always belong together.
//
// handler(hub, {path, allowedEndpoints, bare}) : path defaults to the SDK default
// /api/webpubsub/hubs/{hub}/; allowedEndpoints is passed through (abuse protection); bare: true
// constructs the handler with no callbacks at all (the SDK's defaults: connect -> 200 with an
// empty body, user events -> 200 empty).

import { AsyncLocalStorage } from "node:async_hooks";
import { once } from "node:events";

import { WebPubSubEventHandler } from "./sdk.mjs";
import express from "express";

import { Recorder } from "./wait.mjs";

export const DEFAULT_PATH = (hub) => `/api/webpubsub/hubs/${hub}/`;

export async function startUpstream({ name = "upstream", port: fixedPort = 0 } = {}) {
  const app = express();
  const als = new AsyncLocalStorage();
  const handlers = []; // in mount order
  const requests = [];
  const rec = new Recorder(name);
  const sockets = new Set();

  app.use((req, res, next) => {
    const entry = {
      method: req.method,
      url: req.originalUrl,
      path: req.path,
      headers: { ...req.headers },
      rawHeaders: [...req.rawHeaders],
      at: Date.now(),
      status: undefined,
      responseHeaders: undefined,
    };
    res.on("finish", () => {
      entry.status = res.statusCode;
      entry.responseHeaders = res.getHeaders();
      entry.finishedAt = Date.now();
      rec.push("response", entry);
      if (entry.handler) entry.handler.rec.push("response", entry);
    });
    requests.push(entry);
    const lower = req.path.toLowerCase().replace(/\/?$/, "/");
    const h = handlers.find((x) => lower.startsWith(x.path));
    entry.handler = h;
    rec.push("request", entry);
    if (h) {
      h.requests.push(entry);
      h.rec.push("request", entry);
      if (h.script.intercept) {
        let handled;
        try {
          handled = h.script.intercept(req, res, entry);
        } catch (err) {
          next(err);
          return;
        }
        if (handled) return;
      }
    }
    als.run(entry, next);
  });

  const server = app.listen(fixedPort, "127.0.0.1");
  await once(server, "listening");
  // Requests node's HTTP parser refused (they never reach express): kept for diagnostics.
  const clientErrors = [];
  server.on("clientError", (err, socket) => {
    clientErrors.push({ at: Date.now(), code: err.code, message: err.message, rawPacket: err.rawPacket?.toString("latin1").slice(0, 400) });
    rec.push("clientError", clientErrors.at(-1));
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const port = server.address().port;
  const base = `http://127.0.0.1:${port}`;

  const up = {
    app,
    server, // the node http.Server (e.g. to shorten keepAliveTimeout)
    port,
    base,
    requests,
    clientErrors,
    rec,
    /** The URL template for hubcast's --event-handler, pointing at the SDK default path. */
    template: `${base}/api/webpubsub/hubs/{hub}/`,

    handler(hub, { path, allowedEndpoints, bare = false } = {}) {
      const mountPath = (path ?? DEFAULT_PATH(hub)).toLowerCase().replace(/\/?$/, "/");
      if (handlers.some((x) => x.path === mountPath)) {
        throw new Error(`${name}: a handler is already mounted at ${mountPath} (one per hub and path)`);
      }
      const h = {
        hub,
        path: mountPath,
        rec: new Recorder(`${name}:${hub}`),
        requests: [],
        script: {},
        /** Recorded SDK callbacks of one kind (connect, connected, disconnected, user). */
        events(kind, connectionId) {
          return h.rec
            .all(kind)
            .filter((e) => connectionId === undefined || e.request.context.connectionId === connectionId);
        },
        /** Waits for a callback of `kind`, optionally of one connection. */
        wait(kind, connectionId, timeout = 15000, pred = () => true) {
          return h.rec.wait(
            kind,
            (e) => (connectionId === undefined || e.request.context.connectionId === connectionId) && pred(e),
            timeout,
          );
        },
        /** OPTIONS (abuse-protection) requests seen so far. */
        validations() {
          return h.requests.filter((r) => r.method === "OPTIONS");
        },
      };
      const record = (kind, request) => {
        // states: the connection state as it came in (the SDK's setState mutates the request).
        const e = { kind, request, states: structuredClone(request.context?.states ?? {}), http: als.getStore(), at: Date.now() };
        h.rec.push(kind, e);
        h.rec.push("event", e);
        return e;
      };
      const options = { path: mountPath };
      if (allowedEndpoints) options.allowedEndpoints = allowedEndpoints;
      if (!bare) {
        options.handleConnect = async (req, res) => {
          record("connect", req);
          if (h.script.handleConnect) return h.script.handleConnect(req, res);
          return res.success();
        };
        options.onConnected = (req) => {
          record("connected", req);
          if (h.script.onConnected) h.script.onConnected(req);
        };
        options.onDisconnected = (req) => {
          record("disconnected", req);
          if (h.script.onDisconnected) h.script.onDisconnected(req);
        };
        options.handleUserEvent = async (req, res) => {
          record("user", req);
          if (h.script.handleUserEvent) return h.script.handleUserEvent(req, res);
          return res.success();
        };
        // Group events (azure.webpubsub.gp.joined / gp.left): express 1.1 only.
        options.onGroupJoined = (req) => record("joined", req);
        options.onGroupLeft = (req) => record("left", req);
      }
      const sdk = new WebPubSubEventHandler(hub, options);
      h.sdk = sdk;
      // Mount it: a request reaches the SDK only through this app-level dispatcher, so handlers
      // added after start still come before express's 404.
      handlers.push(h);
      app.use(sdk.getMiddleware());
      return h;
    },

    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return up;
}
