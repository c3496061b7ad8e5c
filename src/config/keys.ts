// The table of every configuration key: its type (with its range), default and one line
// of docs. docs/configuration.md is checked against this table by a test (key, default
// and type), so adding or changing a key here without documenting it fails the build.
//
// Each key has a purpose-named type rather than a generic "number": a count and a port
// are both whole numbers, but they have different ranges and different messages.

/** The longest delay a Node.js timer can wait (2^31 - 1 ms); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The smallest size a size key other than `0` may have. */
export const MIN_SIZE = 1024;

export type KeyType =
  /** A TCP port, 0–65535. */
  | { readonly kind: "port" }
  /** A whole number of things (redirects, nesting levels), min–max inclusive. */
  | { readonly kind: "count"; readonly min: number; readonly max: number }
  /** Seconds, up to 3 decimals, at most MAX_TIMER_MS; `zero`: what 0 means, null if refused. */
  | { readonly kind: "seconds"; readonly zero: string | null }
  /** A size with a unit (K, M, G, T), at least MIN_SIZE; `zero`: what 0 means, null if refused. */
  | { readonly kind: "bytes"; readonly zero: string | null }
  /** A host name or an IP address to listen on. */
  | { readonly kind: "host" }
  /** A directory; relative ones resolve against the config file's folder. */
  | { readonly kind: "path" }
  /** A Debian architecture name; empty: computed at start-up. */
  | { readonly kind: "arch" }
  /** Capability names separated by blanks. */
  | { readonly kind: "names" }
  /** An HTTP Basic user name (no ":"). */
  | { readonly kind: "username" }
  /**
   * Any text, never repeated in messages. Only the secrets file may set it (see
   * src/config/secrets.ts); written in buildd.conf it is refused.
   */
  | { readonly kind: "secret" }
  /** A file; relative to the config file's folder; empty: none. */
  | { readonly kind: "file" }
  /** yes/no (also true/false, on/off, 1/0). */
  | { readonly kind: "boolean" }
  /** A POSIX user name, for the user builds run as. */
  | { readonly kind: "user" }
  /** Hosts, host:port pairs and CIDR networks (src/protocol/allow.ts); empty: anywhere. */
  | { readonly kind: "allow-list" }
  /** `host:port` of a server to connect to; empty: none. */
  | { readonly kind: "endpoint" }
  /** One line of free text (no control characters). */
  | { readonly kind: "text" }
  /** Accepted for compatibility with the reference's files and not used. */
  | { readonly kind: "ignored" }
  | { readonly kind: "enum"; readonly choices: readonly string[] };

export interface KeySpec {
  readonly section: string;
  readonly key: string;
  readonly type: KeyType;
  /** Default as it would be written in buildd.conf; null: computed at start-up (see doc). */
  readonly default: string | null;
  readonly doc: string;
}

/** The type column of docs/configuration.md: the kind and its range, in a few words. */
export function describeType(type: KeyType): string {
  switch (type.kind) {
    case "port":
      return "port 0–65535";
    case "count":
      return `count ${type.min}–${type.max}`;
    case "seconds":
      return type.zero === null ? "seconds > 0" : "seconds ≥ 0";
    case "bytes":
      return type.zero === null ? "size ≥ 1K" : "size ≥ 1K, or 0";
    case "host":
      return "host";
    case "path":
      return "path";
    case "arch":
      return "architecture";
    case "names":
      return "capability names";
    case "username":
      return "user name";
    case "secret":
      return "secret (secrets file only)";
    case "file":
      return "file, or empty";
    case "boolean":
      return "yes or no";
    case "user":
      return "user name";
    case "allow-list":
      return "hosts and networks";
    case "endpoint":
      return "host:port, or empty";
    case "text":
      return "text";
    case "ignored":
      return "ignored";
    case "enum":
      return type.choices.join(", ");
  }
}

const POSITIVE_SECONDS: KeyType = { kind: "seconds", zero: null };
const POSITIVE_SIZE: KeyType = { kind: "bytes", zero: null };

export const CONFIG_KEYS: readonly KeySpec[] = [
  {
    section: "builder",
    key: "architecturetag",
    type: { kind: "arch" },
    default: null,
    doc: "Architecture reported by `info()` and used for builds. Default (also when empty): `dpkg --print-architecture`, run at start-up.",
  },
  {
    section: "builder",
    key: "filecache",
    type: { kind: "path" },
    default: "var/filecache",
    doc: "Directory of the content-addressed file cache. Created at start-up if its parent exists.",
  },
  {
    section: "builder",
    key: "statedir",
    type: { kind: "path" },
    default: "var",
    doc: "Directory for the SQLite journal, the build log and build working directories. Created at start-up if its parent exists.",
  },
  {
    section: "builder",
    key: "bindhost",
    type: { kind: "host" },
    default: "127.0.0.1",
    doc: "Address the HTTP server listens on (honoured, unlike the reference).",
  },
  {
    section: "builder",
    key: "bindport",
    type: { kind: "port" },
    default: "8221",
    doc: "TCP port of the HTTP server; 0 picks a free port.",
  },
  {
    section: "builder",
    key: "secrets",
    type: { kind: "file" },
    default: "",
    doc: "The secrets file: the same `[section] key = value` lines as this file, for the secret keys only (`[auth] password`, `[buildbot] password`, and `[capabilities]` lines carrying a capability's secret properties). It must be owned by the user buildd runs as and not readable by group or others (mode 0600), or buildd refuses to start. Relative to this file's folder. Empty: no secrets.",
  },
  {
    section: "builder",
    key: "sharepath",
    type: { kind: "ignored" },
    default: "",
    doc: "Accepted for compatibility with the reference's config files; unused.",
  },
  {
    section: "builder",
    key: "ntphost",
    type: { kind: "ignored" },
    default: "",
    doc: "Accepted for compatibility with the reference's config files; unused.",
  },
  {
    section: "builder",
    key: "proxyport",
    type: { kind: "ignored" },
    default: "",
    doc: "Accepted for compatibility with the reference's config files; unused.",
  },
  {
    section: "builder",
    key: "only_if_requires",
    type: { kind: "names" },
    default: "",
    doc: "Capability names, separated by spaces: this worker then only takes builds whose `build_requires` name one of them (a worker reserved for a rare resource). Each must be declared in `[capabilities]`.",
  },
  {
    section: "builder",
    key: "probe_interval",
    type: POSITIVE_SECONDS,
    default: "60",
    doc: "Seconds between two runs of the capability probes (they also run once at start-up).",
  },
  {
    section: "cache",
    key: "max_size",
    type: { kind: "bytes", zero: "no budget" },
    default: "20G",
    doc: "Size budget of the file cache; least recently used entries that nothing holds are evicted to stay under it. `0` means no budget.",
  },
  {
    section: "cache",
    key: "min_free",
    type: { kind: "bytes", zero: "no reserve" },
    default: "1G",
    doc: "Free space to keep on the cache's file system; downloads evict or are refused to keep it. `0` means no reserve.",
  },
  {
    section: "download",
    key: "connect_timeout",
    type: POSITIVE_SECONDS,
    default: "30",
    doc: "Seconds to wait for a librarian connection.",
  },
  {
    section: "download",
    key: "idle_timeout",
    type: POSITIVE_SECONDS,
    default: "60",
    doc: "Seconds without a received byte before a download is given up.",
  },
  {
    section: "download",
    key: "total_timeout",
    type: POSITIVE_SECONDS,
    default: "3600",
    doc: "Seconds a whole download may take.",
  },
  {
    section: "download",
    key: "max_size",
    type: POSITIVE_SIZE,
    default: "10G",
    doc: "Largest file `ensurepresent` downloads.",
  },
  {
    section: "download",
    key: "max_redirects",
    type: { kind: "count", min: 0, max: 20 },
    default: "5",
    doc: "Redirects followed before a download fails; 0 follows none.",
  },
  {
    section: "rpc",
    key: "max_body",
    type: POSITIVE_SIZE,
    default: "16M",
    doc: "Largest XML-RPC request body; larger ones are answered 413.",
  },
  {
    section: "rpc",
    key: "max_depth",
    // At least 1: every call's parameters sit one <value> deep. 1000 is far beyond any
    // real call and keeps the recursive encoder of echo() far from the stack's limit.
    type: { kind: "count", min: 1, max: 1000 },
    default: "64",
    doc: "Deepest nesting of `<value>`s accepted in a request (1: scalars only, no arrays or structs).",
  },
  {
    section: "build",
    key: "abort_timeout",
    type: POSITIVE_SECONDS,
    default: "120",
    doc: "Seconds `abort()` waits for every process of the build to die before the result is BUILDERFAIL.",
  },
  {
    section: "build",
    key: "kill_grace",
    type: { kind: "seconds", zero: "SIGKILL at once" },
    default: "5",
    doc: "Seconds between SIGTERM and SIGKILL when a build is aborted or times out; 0 sends SIGKILL at once.",
  },
  {
    section: "build",
    key: "shutdown_grace",
    type: { kind: "seconds", zero: "abort at once" },
    default: "60",
    doc: "On SIGTERM/SIGINT the builder stops accepting builds and lets a running build finish for this long, then aborts it (BUILDERFAIL); 0 aborts it at once.",
  },
  {
    section: "build",
    key: "log_max_size",
    type: POSITIVE_SIZE,
    default: "1G",
    doc: "Largest build log; a build writing more is stopped as PACKAGEFAIL.",
  },
  {
    section: "auth",
    key: "username",
    type: { kind: "username" },
    default: "buildd",
    doc: "User name managers must send with HTTP Basic authentication, when `password` is set. It cannot contain `:`.",
  },
  {
    section: "auth",
    key: "password",
    type: { kind: "secret" },
    default: "",
    doc: "When set, `/rpc` and `/filecache` require HTTP Basic authentication with `username` and this password (a manager puts them in the builder's URL: `http://buildd:PASSWORD@host:8221/`). Empty: no authentication, as the reference. Keep the file readable by the builder only; errors never repeat it.",
  },
  {
    section: "auth",
    key: "trusted_network",
    type: { kind: "boolean" },
    default: "no",
    doc: "`yes`: the network between the managers and this builder is trusted, so a `bindhost` that is not loopback may serve without a password, and Basic credentials may travel over plain HTTP. A warning says so at every start. `no` (the default): such a builder refuses to start without both a password and `[tls]`.",
  },
  {
    section: "tls",
    key: "cert",
    type: { kind: "file" },
    default: "",
    doc: "PEM certificate (chain) for HTTPS on `bindport`: `/rpc`, `/filecache` and the web pages. Set together with `key`; reloaded on SIGHUP. Empty: plain HTTP.",
  },
  {
    section: "tls",
    key: "key",
    type: { kind: "file" },
    default: "",
    doc: "PEM private key of `cert`. Like the secrets file, it must be owned by the user buildd runs as and not readable by group or others.",
  },
  {
    section: "download",
    key: "allow",
    type: { kind: "allow-list" },
    default: "",
    doc: "Where `ensurepresent` may download from: host names, `host:port` pairs and CIDR networks, separated by blanks or commas (`librarian.example 10.0.0.0/8 [fd00::1]:8080`). Checked on the address every URL and redirect resolves to. Empty: anywhere except the link-local metadata addresses (169.254.0.0/16, fd00:ec2::254), which are refused unless listed.",
  },
  {
    section: "build",
    key: "user",
    type: { kind: "user" },
    default: "buildd",
    doc: "The unprivileged user `script` steps on the host run as, and the build user inside a chroot. Created by `buildd init` (and by the test setup) when missing.",
  },
  {
    section: "http",
    key: "headers_timeout",
    type: POSITIVE_SECONDS,
    default: "10",
    doc: "Seconds a client may take to send a request's headers; a slower one (a slow-loris attack) is disconnected.",
  },
  {
    section: "http",
    key: "request_timeout",
    type: POSITIVE_SECONDS,
    default: "300",
    doc: "Seconds a client may take to send a whole request, body included (an XML-RPC body is at most `[rpc] max_body`).",
  },
  {
    section: "http",
    key: "max_connections_per_client",
    type: { kind: "count", min: 1, max: 100000 },
    default: "256",
    doc: "Open connections one client address may hold; further ones are closed at once, so that one client cannot take every connection.",
  },
  {
    section: "buildbot",
    key: "master",
    type: { kind: "endpoint" },
    default: "",
    doc: "The Buildbot master to work for: `host:port` of its worker port (its `msgpack_experimental_v7` protocol in `master.cfg`). Set with `name`, and `password` in the secrets file. Empty: no Buildbot connection; buildd serves only `/rpc`. See [buildbot.md](buildbot.md).",
  },
  {
    section: "buildbot",
    key: "name",
    type: { kind: "username" },
    default: "",
    doc: "This worker's name, as the master's `Worker(name, password)` lists it.",
  },
  {
    section: "buildbot",
    key: "password",
    type: { kind: "secret" },
    default: "",
    doc: "This worker's password on the master (secrets file only).",
  },
  {
    section: "buildbot",
    key: "max_builds",
    type: { kind: "count", min: 1, max: 64 },
    default: "1",
    doc: "How many builds run at once on this machine, of both kinds together: each Buildbot builder with a step running holds one, and so does a Launchpad build from `build()` until it ends. A Launchpad `build()` finding none free is refused (saying who holds them); a Buildbot step waits for one. Give the master's `Worker(…, max_builds=N)` the same number, or one less if a Launchpad manager uses this builder too.",
  },
  {
    section: "buildbot",
    key: "basedir",
    type: { kind: "path" },
    default: "var/buildbot",
    doc: "The worker's base directory: the master's builders get their directories here (`set_builder_list`), and it is the `basedir` the master joins step paths onto. Created at start-up.",
  },
  {
    section: "buildbot",
    key: "shared_cache",
    type: { kind: "path" },
    default: "var/shared-cache",
    doc: "A directory every Buildbot step on this worker can use across builds (downloads, eggs), named by `BUILDD_SHARED_CACHE` in its environment. A step whose `env` sets `BUILDD_SHARED_CACHE_LOCK=exclusive` holds it alone until its build's steps end. Created at start-up.",
  },
  {
    section: "buildbot",
    key: "admin",
    type: { kind: "text" },
    default: "",
    doc: "Who looks after this worker (`Your Name <you@example.org>`), shown on the master's worker page (the `admin` fact).",
  },
  {
    section: "buildbot",
    key: "host",
    type: { kind: "text" },
    default: "",
    doc: "A description of this machine for the master's worker page (the `host` fact). Empty: the host name, the OS and the CPU count.",
  },
  {
    section: "buildbot",
    key: "reconnect_max",
    type: POSITIVE_SECONDS,
    default: "60",
    doc: "Longest wait between two attempts to reach the master: after a failure the worker waits 1 s, then twice as long each time, up to this.",
  },
  {
    section: "log",
    key: "level",
    type: { kind: "enum", choices: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] },
    default: "info",
    doc: "Level of the builder's own JSON log (pino), written to standard output.",
  },
];
