// Names that become paths. The manager sends file names (filemap keys) and build ids
// that the reference used in paths unchecked; we check them before anything is created.

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** One path component: no slash, not "." or "..", no control characters, ≤ 255 bytes. */
export function isSafeComponent(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name) <= 255 &&
    name !== "." &&
    name !== ".." &&
    !name.includes("/") &&
    !CONTROL.test(name)
  );
}

/** A relative path made of safe components (artifact names such as "out/report.txt"). */
export function isSafeRelativeName(name: string): boolean {
  return Buffer.byteLength(name) <= 4096 && name.split("/").every(isSafeComponent);
}

/** Capability names: what a config line and a requirement may call a capability. */
export const CAPABILITY_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/**
 * Capability property names that may hold a credential: never returned, never logged,
 * and only written in the secrets file.
 */
export function isSecretProperty(key: string): boolean {
  return /pass|secret|token|key|credential/i.test(key);
}
