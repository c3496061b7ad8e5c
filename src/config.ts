// The configuration is read once, here: parsed, validated against CONFIG_KEYS, resolved
// and frozen. Nothing else in the program reads the file or process.env.
//
// Errors name the file, the section and the key, because an operator reading a
// start-up failure should not have to guess which line to fix.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import ini from "ini";
import { CONFIG_KEYS, type KeySpec } from "./config-keys.js";
import { BuilddError } from "./errors.js";
import {
  parseCapabilities,
  parseCapabilityEnv,
  type CapabilityDecl,
  type CapabilityEnvMap,
  type RawLine,
} from "./capabilities/parse.js";
import { CAPABILITY_NAME } from "./capabilities/requirements.js";

export interface Config {
  /** Absolute path of the file read, or null when running on built-in defaults. */
  readonly file: string | null;
  readonly builder: {
    readonly architecturetag: string;
    readonly filecache: string;
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
  readonly cache: { readonly maxSize: number; readonly minFree: number };
  readonly download: {
    readonly connectTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly totalTimeoutMs: number;
    readonly maxBytes: number;
    readonly maxRedirects: number;
  };
  readonly rpc: { readonly maxBody: number; readonly maxDepth: number };
  readonly build: {
    readonly abortTimeoutMs: number;
    readonly killGraceMs: number;
    readonly logMaxBytes: number;
  };
  readonly auth: { readonly username: string; readonly password: string };
  readonly log: { readonly level: string };
}

export interface LoadOptions {
  /** --config FILE, if given. */
  readonly file?: string | undefined;
  /** The environment to read BUILDD_CONFIG from (the CLI passes process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths resolve against when there is no file. */
  readonly cwd?: string;
}

type Raw = Map<string, Map<string, string>>;

/** Sections read as lines, not INI: a name may repeat and a line has positional words. */
const LINE_SECTIONS = new Set(["capabilities", "capability_env"]);

/**
 * Take the line sections out of the text before the INI parser sees it (it would
 * mangle them); their lines are kept with their line numbers for error messages.
 */
function splitLineSections(text: string): { ini: string; lines: Map<string, RawLine[]> } {
  const iniLines: string[] = [];
  const lines = new Map<string, RawLine[]>();
  let current: RawLine[] | null = null;
  text.split(/\r?\n/).forEach((line, i) => {
    const header = /^\s*\[([^\]]*)\]\s*$/.exec(line);
    if (header) {
      const name = header[1]!.trim();
      if (LINE_SECTIONS.has(name)) {
        current = lines.get(name) ?? [];
        lines.set(name, current);
        iniLines.push("");
        return;
      }
      current = null;
    }
    if (current) {
      current.push({ line: i + 1, text: line });
      iniLines.push("");
    } else {
      iniLines.push(line);
    }
  });
  return { ini: iniLines.join("\n"), lines };
}

function configError(where: string, message: string): BuilddError {
  return new BuilddError("BUILDD_ERR_CONFIG", `${where}: ${message}`);
}

function readRaw(file: string): { raw: Raw; lines: Map<string, RawLine[]> } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw configError(file, `cannot read the configuration file (${code})`);
  }
  const split = splitLineSections(text);
  const parsed: Record<string, unknown> = ini.parse(split.ini);
  const raw: Raw = new Map();
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value !== "object" || value === null) {
      throw configError(file, `key "${name}" is outside any [section]`);
    }
    const keys = new Map<string, string>();
    for (const [key, v] of Object.entries(value)) {
      if (typeof v === "object" && v !== null) {
        throw configError(file, `unknown section [${name}.${key}]`);
      }
      keys.set(key, String(v));
    }
    raw.set(name, keys);
  }
  return { raw, lines: split.lines };
}

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

/** Parse one value by its declared type; returns a number or a string. */
export function parseValue(spec: KeySpec, value: string, where: string): string | number {
  const v = value.trim();
  const bad = (what: string): BuilddError =>
    configError(where, `[${spec.section}] ${spec.key} = "${value}" is not ${what}`);
  switch (spec.type) {
    case "string":
    case "lines":
      return v;
    case "path":
    case "host":
      if (v === "") throw bad(spec.type === "path" ? "a path" : "a host name or address");
      return v;
    case "port": {
      if (!/^\d+$/.test(v) || Number(v) > 65535) throw bad("a whole number from 0 to 65535");
      return Number(v);
    }
    case "seconds": {
      if (!/^\d+(\.\d+)?$/.test(v) || Number(v) <= 0) throw bad("a positive number of seconds");
      return Math.round(Number(v) * 1000);
    }
    case "bytes": {
      const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(v);
      if (!m) throw bad("a size such as 512M or 20G");
      return Math.floor(Number(m[1]) * (BYTE_UNITS[(m[2] ?? "").toUpperCase()] ?? 1));
    }
    case "enum":
      if (!spec.choices?.includes(v)) throw bad(`one of ${spec.choices?.join(", ")}`);
      return v;
  }
}

function defaultArchitecture(): string {
  try {
    return execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();
  } catch {
    // No dpkg (not a Debian machine): Node's names for the common cases match Debian's.
    const map: Record<string, string> = {
      x64: "amd64",
      arm64: "arm64",
      ia32: "i386",
      arm: "armhf",
    };
    return map[process.arch] ?? process.arch;
  }
}

/** Create a configured directory if its parent exists; a missing parent is a config error. */
function ensureDirectory(dir: string, where: string, label: string): void {
  try {
    const st = fs.statSync(dir);
    if (!st.isDirectory()) throw configError(where, `${label} ${dir} is not a directory`);
    return;
  } catch (err) {
    if (err instanceof BuilddError) throw err;
  }
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw configError(where, `${label} ${dir} does not exist and cannot be created (${code})`);
  }
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? {};
  const chosen = opts.file ?? env["BUILDD_CONFIG"];
  const file = chosen ? path.resolve(opts.cwd ?? process.cwd(), chosen) : null;
  const base = file ? path.dirname(file) : path.resolve(opts.cwd ?? process.cwd());
  const where = file ?? "built-in defaults";
  const { raw, lines } = file
    ? readRaw(file)
    : { raw: new Map() as Raw, lines: new Map<string, RawLine[]>() };

  for (const [section, keys] of raw) {
    if (!CONFIG_KEYS.some((k) => k.section === section)) {
      throw configError(where, `unknown section [${section}]`);
    }
    for (const key of keys.keys()) {
      if (!CONFIG_KEYS.some((k) => k.section === section && k.key === key)) {
        throw configError(where, `unknown key "${key}" in section [${section}]`);
      }
    }
  }

  const values = new Map<string, string | number>();
  for (const spec of CONFIG_KEYS) {
    const given = raw.get(spec.section)?.get(spec.key);
    const text = given ?? spec.default;
    if (text === null) continue;
    values.set(`${spec.section}.${spec.key}`, parseValue(spec, text, where));
  }
  const num = (k: string): number => values.get(k) as number;
  const str = (k: string): string => values.get(k) as string;
  const dir = (k: string): string => path.resolve(base, str(k));

  const statedir = dir("builder.statedir");
  const filecache = dir("builder.filecache");
  ensureDirectory(statedir, where, "[builder] statedir");
  ensureDirectory(filecache, where, "[builder] filecache");
  if (path.resolve(filecache) === path.resolve(statedir)) {
    throw configError(where, "[builder] filecache must not be the same directory as statedir");
  }

  const capabilities = parseCapabilities(lines.get("capabilities") ?? [], where);
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

  const config: Config = {
    file,
    builder: {
      architecturetag: raw.get("builder")?.get("architecturetag")?.trim() || defaultArchitecture(),
      filecache,
      statedir,
      bindhost: str("builder.bindhost"),
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
    },
    rpc: { maxBody: num("rpc.max_body"), maxDepth: num("rpc.max_depth") },
    build: {
      abortTimeoutMs: num("build.abort_timeout"),
      killGraceMs: num("build.kill_grace"),
      logMaxBytes: num("build.log_max_size"),
    },
    auth: { username: str("auth.username"), password: str("auth.password") },
    log: { level: str("log.level") },
  };
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
