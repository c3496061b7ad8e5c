// How a chosen capability's properties become the build's environment.
//
// A mapping is VAR → property. PATH and LD_LIBRARY_PATH are lists: a property mapped to
// them is prepended (PATH keeps the default search path after it), because replacing
// PATH with one directory would break every step. postgresql has a built-in mapping so
// that `psql`, libpq and the client tools find the declared cluster with no setup in the
// build; a [capability_env] line for postgresql adds to it or overrides single variables.

import { DEFAULT_PATH } from "../process/environment.js";
import { isSecretProperty } from "../protocol/names.js";
import { scrubText } from "../log/scrub.js";
import type { CapabilityDecl, CapabilityEnvMap } from "../config/capabilities.js";

export const BUILTIN_ENV: CapabilityEnvMap = {
  postgresql: {
    PGPORT: "port",
    PGHOST: "host",
    PGUSER: "user",
    PATH: "bin",
    LD_LIBRARY_PATH: "lib",
  },
};

const LIST_VARS = new Set(["PATH", "LD_LIBRARY_PATH"]);

/** The properties safe to show (capabilities(), status(), the build log). */
export function publicProperties(decl: CapabilityDecl): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(decl.properties)) {
    // A probe command may embed a URL with credentials; show it scrubbed.
    if (!isSecretProperty(k)) out[k] = scrubText(v);
  }
  return out;
}

export function mappingFor(name: string, custom: CapabilityEnvMap): Record<string, string> {
  return { ...BUILTIN_ENV[name], ...custom[name] };
}

export interface MappedEnv {
  readonly env: Record<string, string>;
  /** `VAR=value` per variable set, secret values masked, for the build log. */
  readonly shown: string[];
}

/**
 * The environment for a set of chosen capabilities, in the order the build required
 * them: list variables collect every capability's entries, other variables are set by
 * the last capability that maps them.
 */
export function capabilityEnv(
  chosen: readonly CapabilityDecl[],
  custom: CapabilityEnvMap,
): Record<string, string> {
  return mapCapabilities(chosen, custom).env;
}

export function mapCapabilities(
  chosen: readonly CapabilityDecl[],
  custom: CapabilityEnvMap,
): MappedEnv {
  const env: Record<string, string> = {};
  const lists = new Map<string, string[]>();
  const secret = new Set<string>();
  for (const decl of chosen) {
    for (const [variable, property] of Object.entries(mappingFor(decl.name, custom))) {
      const value = decl.properties[property];
      if (value === undefined || value === "") continue;
      if (LIST_VARS.has(variable)) {
        lists.set(variable, [...(lists.get(variable) ?? []), value]);
      } else {
        env[variable] = value;
        if (isSecretProperty(property)) secret.add(variable);
        else secret.delete(variable);
      }
    }
  }
  const path = lists.get("PATH");
  if (path) env["PATH"] = [...path, DEFAULT_PATH].join(":");
  const lib = lists.get("LD_LIBRARY_PATH");
  if (lib) env["LD_LIBRARY_PATH"] = lib.join(":");
  const shown = Object.entries(env).map(
    ([k, v]) => `${k}=${secret.has(k) ? "********" : scrubText(v)}`,
  );
  return { env, shown };
}
