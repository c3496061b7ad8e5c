// Optional HTTP Basic authentication in front of /rpc and /filecache.
//
// The reference has none ("the network is trusted"). Basic authentication is what an
// unchanged manager can already do: XML-RPC clients (Twisted's, Python's) send the
// user and password from the builder URL's userinfo, and file downloads take the same
// URL. Use it over a trusted network or behind TLS termination; it keeps out the
// casual caller, the port scanner and the SSRF-by-ensurepresent.

import { timingSafeEqual, createHash } from "node:crypto";
import type { ServerResponse } from "node:http";

export interface AuthConfig {
  readonly username: string;
  readonly password: string;
}

/** Constant-time comparison of two strings of any length. */
function same(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

export const CHALLENGE = 'Basic realm="buildd", charset="UTF-8"';

/** The one 401 answer: the challenge a client (or a manager's URL userinfo) answers. */
export function refuseUnauthenticated(res: ServerResponse): void {
  res.writeHead(401, {
    "www-authenticate": CHALLENGE,
    "content-type": "text/plain; charset=utf-8",
  });
  res.end("Authentication required: send HTTP Basic credentials ([auth] username and password)\n");
}

/** Whether an Authorization header carries the configured credentials. */
export function isAuthorized(auth: AuthConfig, header: string | undefined): boolean {
  const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec((header ?? "").trim());
  const decoded = m ? Buffer.from(m[1]!, "base64").toString("utf8") : "";
  const colon = decoded.indexOf(":");
  const user = colon >= 0 ? decoded.slice(0, colon) : "";
  const pass = colon >= 0 ? decoded.slice(colon + 1) : "";
  // Evaluate both comparisons always, so timing does not say which one failed.
  const userOk = same(user, auth.username);
  const passOk = same(pass, auth.password);
  return m !== null && userOk && passOk;
}

/** The check createServer() runs in front of /rpc and /filecache; null: no authentication. */
export function basicAuth(auth: AuthConfig): ((header: string | undefined) => boolean) | null {
  return auth.password === "" ? null : (header) => isAuthorized(auth, header);
}
