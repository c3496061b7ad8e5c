// URL and credential rules of a download: which URLs we fetch at all, and where the
// librarian's credentials may be sent.

import { FetchError } from "./fetch-errors.js";

/** Parse `raw` (relative to `base` for a redirect's Location); only http: and https:. */
export function parseUrl(raw: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw new FetchError(
      "BUILDD_ERR_FETCH_BAD_URL",
      base === undefined ? "invalid URL" : "invalid redirect URL",
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new FetchError(
      "BUILDD_ERR_FETCH_BAD_URL",
      `unsupported URL scheme: ${url.protocol.slice(0, -1)}`,
    );
  }
  return url;
}

/** host:port with the scheme's default port made explicit. */
export function authority(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

/** The Authorization header for the credentials, if there are any. */
export function basicAuth(username?: string | null, password?: string | null): string | undefined {
  const user = username ?? "";
  const pass = password ?? "";
  // Launchpad sends an empty username with a token as the password; that still counts.
  if (user === "" && pass === "") return undefined;
  return `Basic ${Buffer.from(`${user}:${pass}`, "utf8").toString("base64")}`;
}
