// contrib/systemd/buildd.service: a unit systemd accepts, whose stop is the builder's
// drain (SIGTERM to buildd alone, a timeout beyond the default grace), restarted on
// failure but not on a configuration error, as a dedicated user in its state directory.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import { CONFIG_KEYS } from "../src/config/keys.js";
import { EXIT } from "../src/cli/errors.js";

const UNIT = "contrib/systemd/buildd.service";
const run = promisify(execFile);

/** The unit's directives, section → key → value (last one wins, as systemd reads them). */
function directives(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section = new Map<string, string>();
  for (const line of text.split("\n")) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) out.set(header[1]!, (section = new Map()));
    const kv = /^(\w+)=(.*)$/.exec(line);
    if (kv) section.set(kv[1]!, kv[2]!);
  }
  return out;
}

const defaultSeconds = (section: string, key: string): number =>
  Number(CONFIG_KEYS.find((k) => k.section === section && k.key === key)!.default);

describe("the systemd unit", () => {
  test("systemd-analyze verify accepts it", async () => {
    const { stdout, stderr } = await run("systemd-analyze", ["verify", UNIT]);
    assert.equal(`${stdout}${stderr}`, "", "no complaint");
  });

  test("stopping drains; restarts on failure, not on a configuration error; a dedicated user", () => {
    const unit = directives(fs.readFileSync(UNIT, "utf8"));
    const service = unit.get("Service")!;
    assert.equal(service.get("KillMode"), "mixed", "SIGTERM to buildd only, not to the build");
    assert.equal(service.get("KillSignal"), "SIGTERM");
    const grace = defaultSeconds("build", "shutdown_grace") + defaultSeconds("build", "kill_grace");
    assert.ok(Number(service.get("TimeoutStopSec")) > grace, `TimeoutStopSec above ${grace} s`);
    assert.equal(service.get("Restart"), "on-failure");
    assert.equal(service.get("RestartPreventExitStatus"), String(EXIT.USAGE));
    assert.ok(service.get("User") && service.get("User") !== "root");
    const state = `/var/lib/${service.get("StateDirectory")}`;
    assert.equal(service.get("WorkingDirectory"), state);
    assert.match(service.get("ExecStart")!, new RegExp(` serve --config ${state}/buildd\\.conf$`));
    assert.equal(unit.get("Install")?.get("WantedBy"), "multi-user.target");
  });
});
