// Which listening addresses only this machine can reach.

import net from "node:net";

/** 127.0.0.0/8, ::1 (also as ::ffff:127.x) and the name localhost. */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (net.isIPv4(host)) return host.startsWith("127.");
  if (net.isIPv6(host)) {
    const h = host.toLowerCase();
    return h === "::1" || /^::ffff:127\./.test(h);
  }
  return false;
}
