// The table of every configuration key: its type, default and one line of docs.
// docs/configuration.md is checked against this table by a test, so adding a key here
// without documenting it fails the build.

export type KeyType = "string" | "path" | "host" | "port" | "seconds" | "bytes" | "enum" | "lines";

export interface KeySpec {
  readonly section: string;
  readonly key: string;
  readonly type: KeyType;
  /** Default as it would be written in buildd.conf; null: computed at start-up (see doc). */
  readonly default: string | null;
  readonly doc: string;
  readonly choices?: readonly string[];
}

export const CONFIG_KEYS: readonly KeySpec[] = [
  {
    section: "builder",
    key: "architecturetag",
    type: "string",
    default: null,
    doc: "Architecture reported by `info()` and used for builds. Default: `dpkg --print-architecture`.",
  },
  {
    section: "builder",
    key: "filecache",
    type: "path",
    default: "var/filecache",
    doc: "Directory of the content-addressed file cache. Created if its parent exists.",
  },
  {
    section: "builder",
    key: "statedir",
    type: "path",
    default: "var",
    doc: "Directory for the SQLite journal, the build log and build working directories. Created if its parent exists.",
  },
  {
    section: "builder",
    key: "bindhost",
    type: "host",
    default: "127.0.0.1",
    doc: "Address the HTTP server listens on (honoured, unlike the reference).",
  },
  {
    section: "builder",
    key: "bindport",
    type: "port",
    default: "8221",
    doc: "TCP port of the HTTP server; 0 picks a free port.",
  },
  {
    section: "builder",
    key: "sharepath",
    type: "string",
    default: "",
    doc: "Accepted for compatibility with the reference's config files; unused.",
  },
  {
    section: "builder",
    key: "ntphost",
    type: "string",
    default: "",
    doc: "Accepted for compatibility with the reference's config files; unused.",
  },
  {
    section: "builder",
    key: "proxyport",
    type: "string",
    default: "",
    doc: "Accepted for compatibility with the reference's config files; unused.",
  },
  {
    section: "builder",
    key: "only_if_requires",
    type: "string",
    default: "",
    doc: "Capability names, separated by spaces: this worker then only takes builds whose `build_requires` name one of them (a worker reserved for a rare resource). Each must be declared in `[capabilities]`.",
  },
  {
    section: "builder",
    key: "probe_interval",
    type: "seconds",
    default: "60",
    doc: "Seconds between two runs of the capability probes (they also run once at start-up).",
  },
  {
    section: "cache",
    key: "max_size",
    type: "bytes",
    default: "20G",
    doc: "Size budget of the file cache; least recently used entries that nothing holds are evicted to stay under it. `0` means no budget.",
  },
  {
    section: "cache",
    key: "min_free",
    type: "bytes",
    default: "1G",
    doc: "Free space to keep on the cache's file system; downloads evict or are refused to keep it.",
  },
  {
    section: "download",
    key: "connect_timeout",
    type: "seconds",
    default: "30",
    doc: "Seconds to wait for a librarian connection.",
  },
  {
    section: "download",
    key: "idle_timeout",
    type: "seconds",
    default: "60",
    doc: "Seconds without a received byte before a download is given up.",
  },
  {
    section: "download",
    key: "total_timeout",
    type: "seconds",
    default: "3600",
    doc: "Seconds a whole download may take.",
  },
  {
    section: "download",
    key: "max_size",
    type: "bytes",
    default: "10G",
    doc: "Largest file `ensurepresent` downloads.",
  },
  {
    section: "download",
    key: "max_redirects",
    type: "port",
    default: "5",
    doc: "Redirects followed before a download fails.",
  },
  {
    section: "rpc",
    key: "max_body",
    type: "bytes",
    default: "16M",
    doc: "Largest XML-RPC request body; larger ones are answered 413.",
  },
  {
    section: "rpc",
    key: "max_depth",
    type: "port",
    default: "64",
    doc: "Deepest nesting of arrays and structs accepted in a request.",
  },
  {
    section: "build",
    key: "abort_timeout",
    type: "seconds",
    default: "120",
    doc: "Seconds `abort()` waits for every process of the build to die before the result is BUILDERFAIL.",
  },
  {
    section: "build",
    key: "kill_grace",
    type: "seconds",
    default: "5",
    doc: "Seconds between SIGTERM and SIGKILL when a build is aborted or times out.",
  },
  {
    section: "build",
    key: "log_max_size",
    type: "bytes",
    default: "1G",
    doc: "Largest build log; a build writing more is stopped as PACKAGEFAIL.",
  },
  {
    section: "auth",
    key: "username",
    type: "string",
    default: "buildd",
    doc: "User name managers must send with HTTP Basic authentication, when `password` is set.",
  },
  {
    section: "auth",
    key: "password",
    type: "string",
    default: "",
    doc: "When set, `/rpc` and `/filecache` require HTTP Basic authentication with `username` and this password (a manager puts them in the builder's URL: `http://buildd:PASSWORD@host:8221/`). Empty: no authentication, as the reference. Keep the file readable by the builder only.",
  },
  {
    section: "log",
    key: "level",
    type: "enum",
    default: "info",
    choices: ["fatal", "error", "warn", "info", "debug", "trace", "silent"],
    doc: "Level of the builder's own JSON log (pino), written to standard output.",
  },
];
