// The program's version, read once from package.json (src/ and dist/ both sit one level
// below it), so `buildd --version` and status()'s builder_version cannot disagree.
import fs from "node:fs";

function readVersion(): string {
  const text = fs.readFileSync(new URL("../package.json", import.meta.url), "utf8");
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed === "object" && parsed !== null && "version" in parsed) {
    return String(parsed.version);
  }
  return "unknown";
}

export const VERSION = readVersion();
