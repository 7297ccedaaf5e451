// Hand-made JWTs (HS256/384/512) for tokens the SDK would not mint: wrong keys, expired,
// odd audiences, string-valued claims.

import { createHmac } from "node:crypto";

const b64url = (buf) => Buffer.from(buf).toString("base64url");

export function signJwt(payload, key, { alg = "HS256", header = {} } = {}) {
  const hash = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[alg];
  if (!hash) throw new Error(`unsupported alg ${alg}`);
  const head = b64url(JSON.stringify({ alg, typ: "JWT", ...header }));
  const body = b64url(JSON.stringify(payload));
  const sig = createHmac(hash, Buffer.from(key, "utf8")).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

export function decodeJwt(token) {
  const [h, p] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString("utf8")),
    payload: JSON.parse(Buffer.from(p, "base64url").toString("utf8")),
  };
}

/** A client access token like getClientAccessToken mints, with overridable claims. */
export function clientToken(endpoint, hub, key, { userId, roles, groups, exp, aud, alg, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iat: now, exp: exp ?? now + 3600, aud: aud ?? `${endpoint}/client/hubs/${hub}`, ...extra };
  if (userId !== undefined) payload.sub = userId;
  if (roles !== undefined) payload.role = roles;
  if (groups !== undefined) payload["webpubsub.group"] = groups;
  return signJwt(payload, key, { alg });
}
