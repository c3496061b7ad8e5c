// Which TCP addresses a process listens on, read from /proc: its socket file descriptors
// matched against the LISTEN entries of its own network namespace. This lets a test find
// a child builder started on port 0 without reading its log (which a [log] level above
// info does not write) and without choosing a "free" port first (which another process
// may take before the child binds it).

import fs from "node:fs";

export interface ListenAddress {
  /** As it goes into a URL: "127.0.0.1", "[::1]". */
  readonly host: string;
  readonly port: number;
}

const LISTEN = "0A";

/** The socket inodes among the open file descriptors of `pid`. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes; // gone, or not yet ours to read
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** /proc/net/tcp writes addresses as 32-bit words in host (little-endian) byte order. */
function wordBytes(hex: string): number[] {
  const out: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) out.push(parseInt(word.slice(b, b + 2), 16));
  }
  return out;
}

function urlHost(hex: string): string {
  const bytes = wordBytes(hex);
  if (bytes.length === 4) {
    // Listening on every address: connect through loopback.
    return bytes.every((b) => b === 0) ? "127.0.0.1" : bytes.join(".");
  }
  if (bytes.every((b) => b === 0)) return "[::1]";
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return `[${groups.join(":")}]`;
}

/** Every address `pid` listens on (TCP over IPv4 and IPv6); empty if none yet. */
export function listeningAddresses(pid: number): ListenAddress[] {
  const inodes = socketInodes(pid);
  if (inodes.size === 0) return [];
  const out: ListenAddress[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      const [addr, port] = (f[1] ?? "").split(":");
      if (f[3] !== LISTEN || !inodes.has(f[9] ?? "") || !addr || !port) continue;
      out.push({ host: urlHost(addr), port: parseInt(port, 16) });
    }
  }
  return out;
}
