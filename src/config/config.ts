// The configuration is read once, here: parsed (src/config-file.ts), every value checked
// against its key's type and range (src/config-keys.ts, src/config-values.ts), resolved
// and frozen. Nothing else in the program reads the file or process.env.
//
// Pure apart from reading the file: creating directories and asking dpkg for the
// architecture are start-up side effects (src/host-setup.ts), so validating a file, or
// reading the history, never changes the machine.
//
// Errors name the file, the section and the key, because an operator reading a
// start-up failure should not have to guess which line to fix.

import fs from "node:fs";
import path from "node:path";
import { CONFIG_KEYS } from "./keys.js";
import { parseConfigText, type ConfigText } from "./file.js";
import { parseValue, splitEndpoint, type Value } from "./values.js";
import { BuilddError } from "../errors.js";
import {
  parseCapabilities,
  parseCapabilityEnv,
  type CapabilityDecl,
  type CapabilityEnvMap,
} from "./capabilities.js";
import { CAPABILITY_NAME } from "../protocol/names.js";
import { parseAllowList, type AllowEntry } from "../protocol/allow.js";
import {
  checkPrivateFile,
  mergeCapabilitySecrets,
  readSecretsFile,
  refuseSecretsInConfig,
  type SecretKeys,
} from "./secrets.js";
import { isLoopback } from "./network.js";

export interface Config {
  /** Absolute path of the file read, or null when running on built-in defaults. */
  readonly file: string | null;
  readonly builder: {
    /** Null: not configured; start-up asks dpkg (prepareHost in src/host-setup.ts). */
    readonly architecturetag: string | null;
    /** Absolute; created at start-up, not by loadConfig. */
    readonly filecache: string;
    /** Absolute; created at start-up, not by loadConfig. */
    readonly statedir: string;
    readonly bindhost: string;
    readonly bindport: number;
    /** Capability names this worker is reserved for (empty: takes any build). */
    readonly onlyIfRequires: readonly string[];
    readonly probeIntervalMs: number;
  };
  /** [capabilities]: what this worker offers beyond its architecture. */
  readonly capabilities: readonly CapabilityDecl[];
  /** [capability_env]: custom property → environment mappings per capability name. */
  readonly capabilityEnv: CapabilityEnvMap;
  /** Bytes; 0: no budget, no reserve. */
  readonly cache: { readonly maxSize: number; readonly minFree: number };
  readonly download: {
    readonly connectTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly totalTimeoutMs: number;
    readonly maxBytes: number;
    readonly maxRedirects: number;
    /** [download] allow, parsed; null: anywhere but the metadata addresses. */
    readonly allow: readonly AllowEntry[] | null;
  };
  readonly rpc: { readonly maxBody: number; readonly maxDepth: number };
  readonly http: {
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly maxConnectionsPerClient: number;
  };
  readonly build: {
    readonly abortTimeoutMs: number;
    readonly killGraceMs: number;
    /** How long a running build may go on after SIGTERM/SIGINT before it is aborted. */
    readonly shutdownGraceMs: number;
    readonly logMaxBytes: number;
    /** The unprivileged user build steps run as. */
    readonly user: string;
  };
  readonly auth: {
    readonly username: string;
    readonly password: string;
    /** [auth] trusted_network: a non-loopback builder may go without a password or TLS. */
    readonly trustedNetwork: boolean;
  };
  /** HTTPS on bindport, or null for plain HTTP. Paths are absolute. */
  readonly tls: { readonly cert: string; readonly key: string } | null;
  /** The secrets file read at start-up (absolute), or null. */
  readonly secretsFile: string | null;
  readonly log: { readonly level: string };
  /** [buildbot]: the Buildbot master this builder also works for, or null ([buildbot] master empty). */
  readonly buildbot: BuildbotConfig | null;
}

export interface BuildbotConfig {
  readonly master: { readonly host: string; readonly port: number };
  /** As written: `host:port`. */
  readonly masterText: string;
  readonly name: string;
  readonly password: string;
  /** Builds of both kinds at once (src/protocol/slots.ts). */
  readonly maxBuilds: number;
  /** Absolute; created at start-up. */
  readonly basedir: string;
  /** Absolute; created at start-up. */
  readonly sharedCache: string;
  readonly admin: string;
  /** Empty: described at start-up. */
  readonly host: string;
  readonly reconnectMaxMs: number;
}

export interface LoadOptions {
  /** --config FILE, if given. */
  readonly file?: string | undefined;
  /** The environment to read BUILDD_CONFIG from (the CLI passes process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths resolve against when there is no file. */
  readonly cwd?: string;
}

/** Sections read as lines, not INI: a name may repeat and a line has positional words. */
const LINE_SECTIONS: ReadonlySet<string> = new Set(["capabilities", "capability_env"]);

function configError(where: string, message: string): BuilddError {
  return new BuilddError("BUILDD_ERR_CONFIG", `${where}: ${message}`);
}

const SECRET_KEYS: SecretKeys = {
  isSecret: (section, key) =>
    CONFIG_KEYS.some((k) => k.section === section && k.key === key && k.type.kind === "secret"),
  hasSection: (section) => CONFIG_KEYS.some((k) => k.section === section),
  isKey: (section, key) => CONFIG_KEYS.some((k) => k.section === section && k.key === key),
};

function readConfigFile(file: string): ConfigText {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw configError(file, `cannot read the configuration file (${code})`);
  }
  return parseConfigText(text, file, {
    lineSections: LINE_SECTIONS,
    hasSection: (section) => CONFIG_KEYS.some((k) => k.section === section),
    key: (section, key) => {
      const spec = CONFIG_KEYS.find((k) => k.section === section && k.key === key);
      return spec && { secret: spec.type.kind === "secret" };
    },
  });
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? {};
  const chosen = opts.file ?? env["BUILDD_CONFIG"];
  const file = chosen ? path.resolve(opts.cwd ?? process.cwd(), chosen) : null;
  const base = file ? path.dirname(file) : path.resolve(opts.cwd ?? process.cwd());
  const where = file ?? "built-in defaults";
  const { sections, lines } = file
    ? readConfigFile(file)
    : { sections: new Map<string, never>(), lines: new Map<string, never>() };

  const declared = parseCapabilities(lines.get("capabilities") ?? [], where);
  refuseSecretsInConfig({ sections, lines }, declared, where, SECRET_KEYS);
  // The secrets file, if named, completes the file: its keys are the secret ones.
  const secretsSpec = CONFIG_KEYS.find((k) => k.section === "builder" && k.key === "secrets")!;
  const secretsText = sections.get("builder")?.get("secrets")?.value ?? "";
  const secretsName = parseValue(secretsSpec, secretsText, where);
  const secretsFile = typeof secretsName === "string" ? path.resolve(base, secretsName) : null;
  const secrets = secretsFile ? readSecretsFile(secretsFile, where, SECRET_KEYS) : null;

  const values = new Map<string, Value>();
  for (const spec of CONFIG_KEYS) {
    const text =
      secrets?.sections.get(spec.section)?.get(spec.key)?.value ??
      sections.get(spec.section)?.get(spec.key)?.value ??
      spec.default;
    values.set(`${spec.section}.${spec.key}`, text === null ? null : parseValue(spec, text, where));
  }
  // The table and the reads below name the same keys; a mismatch is a bug, not a config error.
  const get = (k: string): Value => {
    if (!values.has(k)) throw new Error(`no configuration key ${k}`);
    return values.get(k)!;
  };
  const num = (k: string): number => {
    const v = get(k);
    if (typeof v !== "number") throw new Error(`configuration key ${k} is not numeric`);
    return v;
  };
  const str = (k: string): string => {
    const v = get(k);
    if (typeof v !== "string") throw new Error(`configuration key ${k} is not text`);
    return v;
  };
  const arch = get("builder.architecturetag");
  const dir = (k: string): string => path.resolve(base, str(k));

  const statedir = dir("builder.statedir");
  const filecache = dir("builder.filecache");
  if (filecache === statedir) {
    throw configError(where, "[builder] filecache must not be the same directory as statedir");
  }

  const capabilities = secrets ? mergeCapabilitySecrets(declared, secrets, secretsFile!) : declared;
  const capabilityEnv = parseCapabilityEnv(lines.get("capability_env") ?? [], where);
  const onlyIfRequires = str("builder.only_if_requires").split(/\s+/).filter(Boolean);
  for (const name of onlyIfRequires) {
    if (!CAPABILITY_NAME.test(name) || !capabilities.some((c) => c.name === name)) {
      // A worker reserved for something it does not have would never take a build.
      throw configError(
        where,
        `[builder] only_if_requires names "${name}", which is not declared in [capabilities]`,
      );
    }
  }

  const file_ = (k: string): string | null => {
    const v = get(k);
    return typeof v === "string" ? path.resolve(base, v) : null;
  };
  const cert = file_("tls.cert");
  const key = file_("tls.key");
  if ((cert === null) !== (key === null)) {
    throw configError(where, "[tls] cert and key go together: set both (PEM files), or neither");
  }
  if (key !== null) checkPrivateFile(key, "[tls] key", where);
  const tls = cert !== null && key !== null ? { cert, key } : null;

  const bindhost = str("builder.bindhost");
  const password = str("auth.password");
  const trustedNetwork = str("auth.trusted_network") === "yes";
  if (!isLoopback(bindhost) && !trustedNetwork) {
    // Anyone who reaches the port could run builds (and make the builder fetch URLs);
    // and Basic credentials over plain HTTP can be read by anyone on the way.
    if (password === "") {
      throw configError(
        where,
        `[builder] bindhost ${bindhost} is reachable from the network and no password is set: ` +
          `anyone who reaches this port could run builds. Set [auth] password in the secrets file ` +
          `([builder] secrets; \`buildd init\` writes one) and [tls] cert and key — ` +
          `or, on a trusted private network only, set [auth] trusted_network = yes`,
      );
    }
    if (tls === null) {
      throw configError(
        where,
        `[builder] bindhost ${bindhost} is reachable from the network, and without [tls] the ` +
          `password would cross it in clear: set [tls] cert and key — ` +
          `or, on a trusted private network only, set [auth] trusted_network = yes`,
      );
    }
  }

  const buildbot = readBuildbot(
    { get, str, num, dir },
    { where, statedir, filecache, secretsFile },
  );

  const config: Config = {
    file,
    builder: {
      architecturetag: typeof arch === "string" ? arch : null,
      filecache,
      statedir,
      bindhost,
      bindport: num("builder.bindport"),
      onlyIfRequires,
      probeIntervalMs: num("builder.probe_interval"),
    },
    capabilities,
    capabilityEnv,
    cache: { maxSize: num("cache.max_size"), minFree: num("cache.min_free") },
    download: {
      connectTimeoutMs: num("download.connect_timeout"),
      idleTimeoutMs: num("download.idle_timeout"),
      totalTimeoutMs: num("download.total_timeout"),
      maxBytes: num("download.max_size"),
      maxRedirects: num("download.max_redirects"),
      allow: parseAllowList(str("download.allow")),
    },
    rpc: { maxBody: num("rpc.max_body"), maxDepth: num("rpc.max_depth") },
    http: {
      headersTimeoutMs: num("http.headers_timeout"),
      requestTimeoutMs: num("http.request_timeout"),
      maxConnectionsPerClient: num("http.max_connections_per_client"),
    },
    build: {
      abortTimeoutMs: num("build.abort_timeout"),
      killGraceMs: num("build.kill_grace"),
      shutdownGraceMs: num("build.shutdown_grace"),
      logMaxBytes: num("build.log_max_size"),
      user: str("build.user"),
    },
    auth: { username: str("auth.username"), password, trustedNetwork },
    tls,
    secretsFile,
    log: { level: str("log.level") },
    buildbot,
  };
  return deepFreeze(config);
}

interface Reads {
  get(k: string): Value;
  str(k: string): string;
  num(k: string): number;
  dir(k: string): string;
}

/** [buildbot], checked as a whole: a master needs a name and a password. */
function readBuildbot(
  r: Reads,
  at: { where: string; statedir: string; filecache: string; secretsFile: string | null },
): BuildbotConfig | null {
  const master = r.get("buildbot.master");
  if (typeof master !== "string") return null;
  const { where } = at;
  const name = r.str("buildbot.name");
  if (name === "") {
    throw configError(
      where,
      "[buildbot] master is set but [buildbot] name is not: give the worker's name as the master's Worker() lists it",
    );
  }
  const password = r.str("buildbot.password");
  if (password === "") {
    throw configError(
      where,
      `[buildbot] master is set but [buildbot] password is not: put it in the secrets file (${at.secretsFile ?? "[builder] secrets, mode 0600"}) as [buildbot] password = …; \`buildd create-worker\` writes one`,
    );
  }
  const basedir = r.dir("buildbot.basedir");
  const sharedCache = r.dir("buildbot.shared_cache");
  const inside = (a: string, b: string): boolean => a === b || a.startsWith(`${b}${path.sep}`);
  for (const [key, p] of [
    ["basedir", basedir],
    ["shared_cache", sharedCache],
  ] as const) {
    // The file cache holds verified inputs, and clean() removes build directories under
    // the state directory's builds/: a Buildbot step must own neither.
    if (inside(p, at.filecache) || inside(at.filecache, p)) {
      throw configError(
        where,
        `[buildbot] ${key} must not be the file cache ([builder] filecache) or hold it, or lie inside it`,
      );
    }
    if (p === at.statedir || inside(p, path.join(at.statedir, "builds"))) {
      throw configError(
        where,
        `[buildbot] ${key} must not be [builder] statedir itself or lie in its builds/ directory`,
      );
    }
  }
  if (inside(sharedCache, basedir) || inside(basedir, sharedCache)) {
    // The master may delete builder directories it no longer lists.
    throw configError(
      where,
      "[buildbot] shared_cache must lie outside [buildbot] basedir, and not hold it",
    );
  }
  return {
    master: splitEndpoint(master),
    masterText: master,
    name,
    password,
    maxBuilds: r.num("buildbot.max_builds"),
    basedir,
    sharedCache,
    admin: r.str("buildbot.admin"),
    host: r.str("buildbot.host"),
    reconnectMaxMs: r.num("buildbot.reconnect_max"),
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
