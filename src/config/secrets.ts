// The secrets file (`[builder] secrets = PATH`): the secret values of the configuration,
// kept out of buildd.conf so that the versioned, shared, backed-up configuration holds
// none (the way a Buildbot worker's owner keeps passwords in a settings file of their
// own). Same `[section] key = value` lines as buildd.conf, for secret keys only, plus
// `[capabilities]` lines that give a declared capability its secret properties:
//
//   [auth]
//   password = "…"
//   [capabilities]
//   postgresql 15 password=…
//
// The file must be a regular file owned by the user buildd runs as and not readable or
// writable by group or others — the rule ssh applies to a private key — or buildd refuses
// to start, saying how to fix it. The same rule guards the TLS key (checkPrivateFile).

import fs from "node:fs";
import { BuilddError } from "../errors.js";
import { isSecretProperty } from "../protocol/names.js";
import { compareVersions } from "../protocol/debian-version.js";
import { parseCapabilities, type CapabilityDecl } from "./capabilities.js";
import { parseConfigText, type ConfigText } from "./file.js";

function configError(where: string, message: string): BuilddError {
  return new BuilddError("BUILDD_ERR_CONFIG", `${where}: ${message}`);
}

/** Refuse a file others may read, or that another user owns; `what` names it in messages. */
export function checkPrivateFile(file: string, what: string, where: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw configError(where, `${what} ${file} cannot be read (${code})`);
  }
  if (!st.isFile()) throw configError(where, `${what} ${file} is not a regular file`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw configError(
      where,
      `${what} ${file} is owned by uid ${st.uid}, not by the user buildd runs as (uid ${uid}): chown it to that user`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
    throw configError(
      where,
      `${what} ${file} is open to group or others (mode ${mode}); it holds secrets: chmod 600 ${file}`,
    );
  }
}

export interface SecretKeys {
  readonly isSecret: (section: string, key: string) => boolean;
  readonly hasSection: (section: string) => boolean;
  readonly isKey: (section: string, key: string) => boolean;
}

/** Read and check the secrets file; its INI values and its capability secret properties. */
export function readSecretsFile(file: string, where: string, keys: SecretKeys): ConfigText {
  checkPrivateFile(file, "the secrets file", where);
  const text = fs.readFileSync(file, "utf8");
  const parsed = parseConfigText(text, file, {
    lineSections: new Set(["capabilities"]),
    hasSection: keys.hasSection,
    key: (section, key) => {
      if (!keys.isKey(section, key)) return undefined;
      if (!keys.isSecret(section, key)) {
        throw configError(
          file,
          `[${section}] ${key} is not a secret; it belongs in buildd.conf (the secrets file holds only secret keys)`,
        );
      }
      return { secret: true };
    },
  });
  return parsed;
}

/**
 * Refuse a secret written in buildd.conf itself: a secret key, or a capability's secret
 * property (password=, token=, …), naming it and where it goes instead.
 */
export function refuseSecretsInConfig(
  text: ConfigText,
  decls: readonly CapabilityDecl[],
  where: string,
  keys: SecretKeys,
): void {
  for (const [section, values] of text.sections) {
    for (const [key, raw] of values) {
      if (keys.isSecret(section, key) && raw.value !== "") {
        throw configError(
          where,
          `[${section}] ${key} is a secret and may not be written in the configuration file: ` +
            `move it to the secrets file named by [builder] secrets (same "[${section}]" and "${key} = …" lines; ` +
            `owned by the user buildd runs as, mode 0600; \`buildd init\` writes one)`,
        );
      }
    }
  }
  for (const d of decls) {
    const secret = Object.keys(d.properties).find(isSecretProperty);
    if (secret !== undefined) {
      throw configError(
        where,
        `[capabilities] ${describe(d)}: property "${secret}" is a secret and may not be written in the configuration file: ` +
          `give it in the secrets file named by [builder] secrets, as a [capabilities] line "${describe(d)} ${secret}=…"`,
      );
    }
  }
}

function describe(d: CapabilityDecl): string {
  return d.version === null ? d.name : `${d.name} ${d.version}`;
}

/**
 * The capability declarations with the secrets file's properties added. Each secrets
 * line must name a declared capability (name and version) and give only secret
 * properties, so that what a worker offers is read in one place, buildd.conf.
 */
export function mergeCapabilitySecrets(
  decls: readonly CapabilityDecl[],
  secrets: ConfigText,
  file: string,
): CapabilityDecl[] {
  const lines = secrets.lines.get("capabilities") ?? [];
  const extra = parseCapabilities(lines, file);
  const merged = decls.map((d) => ({ ...d, properties: { ...d.properties } }));
  for (const e of extra) {
    const target = merged.find(
      (d) =>
        d.name === e.name &&
        (d.version === null || e.version === null
          ? d.version === e.version
          : compareVersions(d.version, e.version) === 0),
    );
    if (!target) {
      throw configError(
        file,
        `[capabilities] ${describe(e)} is not declared in buildd.conf's [capabilities]; declare it there and keep only its secret properties here`,
      );
    }
    for (const [k, v] of Object.entries(e.properties)) {
      if (!isSecretProperty(k)) {
        throw configError(
          file,
          `[capabilities] ${describe(e)}: property "${k}" is not a secret; it belongs in buildd.conf`,
        );
      }
      target.properties[k] = v;
    }
  }
  return merged;
}
