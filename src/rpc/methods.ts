// The XML-RPC method table. Each method is a few lines that delegate: the RPC layer
// never touches files or processes itself.

import type { MethodTable } from "./dispatcher.js";
import type { XmlRpcStruct, XmlRpcValue } from "./codec.js";
import { invalidArgument } from "../errors.js";
import { PROTOCOL_VERSION } from "../protocol/states.js";
import type { StatusSnapshot } from "../protocol/status.js";
import { statusToWire } from "./status.js";

/** What the methods need from the rest of the builder. */
export interface MethodDeps {
  readonly architecture: string;
  /** Names of the build types this builder runs, in registry order. */
  buildTypes(): readonly string[];
  status(): StatusSnapshot;
  ensurePresent(
    sha1: string,
    url: string | null,
    username: string | null,
    password: string | null,
  ): Promise<[boolean, string]>;
  build(
    buildId: string,
    buildType: string,
    chrootSha1: string,
    filemap: Readonly<Record<string, string>>,
    args: XmlRpcStruct,
  ): Promise<[string, string]>;
  abort(): string;
  clean(): Promise<string>;
  /** Per capability name, every declared version with its properties and availability. */
  capabilities(): XmlRpcStruct;
}

const str = (v: XmlRpcValue | undefined): string => v as string;
const struct = (v: XmlRpcValue | undefined): XmlRpcStruct => v as XmlRpcStruct;
const strOrNull = (v: XmlRpcValue | undefined): string | null => (v ?? null) as string | null;

/** build()'s filemap, {name: sha1}: every value must be a string (checked here, at the edge). */
function filemapOf(v: XmlRpcValue | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, sha1] of Object.entries(struct(v))) {
    if (typeof sha1 !== "string")
      throw invalidArgument(`filemap value for ${JSON.stringify(name)} must be a SHA-1 string`);
    out[name] = sha1;
  }
  return out;
}

export function createMethods(deps: MethodDeps): MethodTable {
  return {
    echo: { params: "variadic", handler: (args) => [...args] },
    info: {
      params: [],
      handler: (): XmlRpcValue => [PROTOCOL_VERSION, deps.architecture, [...deps.buildTypes()]],
    },
    status: { params: [], handler: () => statusToWire(deps.status()), polled: true },
    ensurepresent: {
      params: ["string", "string?", "string?", "string?"],
      handler: ([sha1, url, username, password]) =>
        deps.ensurePresent(str(sha1), strOrNull(url), strOrNull(username), strOrNull(password)),
    },
    build: {
      params: ["string", "string", "string", "struct", "struct"],
      handler: ([buildId, buildType, chrootSha1, filemap, args]) =>
        deps.build(str(buildId), str(buildType), str(chrootSha1), filemapOf(filemap), struct(args)),
    },
    abort: { params: [], handler: () => deps.abort() },
    clean: { params: [], handler: () => deps.clean() },
    capabilities: { params: [], handler: () => deps.capabilities() },
  };
}
