// Which builder a command talks to, and with which credentials: `--url` (its userinfo
// carries the credentials, as a manager's builder URL does), else the configuration's
// [builder] bindhost/bindport and [auth] section. The credentials leave the URL here, so
// nothing prints them; they travel only in the Authorization header.

import { usageError } from "./errors.js";
import { loadCliConfig } from "./config.js";

export interface Target {
  /** The builder's base URL without credentials or trailing slash, e.g. http://127.0.0.1:8221 (or https://). */
  readonly base: string;
  /** The Authorization header value, or null when no credentials are known. */
  readonly authorization: string | null;
}

export interface TargetOptions {
  readonly url?: string | undefined;
  readonly config?: string | undefined;
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
}

/** A listening address as a client reaches it: a wildcard address means this machine. */
function reachable(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

export function resolveTarget(opts: TargetOptions): Target {
  const config = loadCliConfig(opts.config);
  const given = opts.url ?? process.env["BUILDD_URL"];
  if (given === undefined || given === "") {
    const { bindhost, bindport } = config.builder;
    const { username, password } = config.auth;
    return {
      base: `http://${reachable(bindhost)}:${bindport}`,
      authorization: password === "" ? null : basic(username, password),
    };
  }
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw usageError(
      `--url ${JSON.stringify(given)} is not a URL; give the builder's address, e.g. http://127.0.0.1:8221`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw usageError(`--url must be an http:// or https:// URL, not ${url.protocol}//…`);
  }
  let authorization: string | null = null;
  if (url.username !== "" || url.password !== "") {
    authorization = basic(decodeURIComponent(url.username), decodeURIComponent(url.password));
  } else if (config.auth.password !== "") {
    authorization = basic(config.auth.username, config.auth.password);
  }
  // The manager's URL may end in /rpc or /; the commands add their own paths.
  const path = url.pathname.replace(/\/+$/, "").replace(/\/rpc$/, "");
  return { base: `${url.protocol}//${url.host}${path}`, authorization };
}
