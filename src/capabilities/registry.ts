// The worker's capabilities at run time: what the config declares, whether each one
// works (probed at start-up and every probe_interval), and the build gate that decides,
// from a build's `build_requires`, whether this worker takes it and with which
// capability versions.
//
// The gate is synchronous and only reads the last probe results: build() must answer at
// once, and everything it checks has to happen before the builder changes state.

import type { Logger } from "pino";
import type { BuildGate } from "../protocol/gate.js";
import { BuilddError, invalidArgument } from "../errors.js";
import type { Struct, Value } from "../protocol/values.js";
import { isSecretProperty } from "../protocol/names.js";
import { mapCapabilities, publicProperties } from "./env.js";
import type { CapabilityDecl, CapabilityEnvMap } from "../config/capabilities.js";
import type { ProcessRunner } from "../process/runner.js";
import { probeCapability, type ProbeResult } from "./probe.js";
import { parseRequirement, satisfies, type Requirement } from "./requirements.js";
import { compareVersions } from "../protocol/debian-version.js";

export interface CapabilityState {
  readonly decl: CapabilityDecl;
  readonly available: boolean;
  readonly reason: string;
}

export type RegistryOptions = {
  readonly capabilities: readonly CapabilityDecl[];
  readonly env: CapabilityEnvMap;
  readonly onlyIfRequires: readonly string[];
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs?: number;
  readonly logger: Logger;
} & (
  | { readonly runner: ProcessRunner; readonly probe?: undefined }
  | {
      /** Replaces the real probes (unit tests). */
      readonly probe: (decl: CapabilityDecl, signal: AbortSignal) => Promise<ProbeResult>;
    }
);

const requirementsError = (message: string): BuilddError =>
  new BuilddError("BUILDD_ERR_REQUIREMENTS", message);

const describe = (d: CapabilityDecl): string =>
  d.version === null ? d.name : `${d.name} ${d.version}`;

/** Highest first; a capability without a version sorts below every versioned one. */
function byVersionDescending(a: CapabilityDecl, b: CapabilityDecl): number {
  if (a.version === null || b.version === null) {
    return (a.version === null ? 1 : 0) - (b.version === null ? 1 : 0);
  }
  return compareVersions(b.version, a.version);
}

/** Parse `build_requires`: a list of strings, each `name` or `name OP version`. */
export function parseBuildRequires(value: Value | undefined): Requirement[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw invalidArgument(
      'build_requires must be a list of strings such as "postgresql >= 15" or "private-repo-access"',
    );
  }
  return (value as string[]).map((text) => {
    try {
      return parseRequirement(text);
    } catch (err) {
      throw invalidArgument(`build_requires: ${(err as Error).message}`);
    }
  });
}

export class CapabilityRegistry {
  private states: CapabilityState[];
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private readonly aborter = new AbortController();
  private closed = false;

  constructor(private readonly opts: RegistryOptions) {
    // Until the first probe, a capability that has a check is not vouched for.
    this.states = opts.capabilities.map((decl) => ({
      decl,
      available: false,
      reason: "not probed yet",
    }));
  }

  list(): readonly CapabilityState[] {
    return this.states;
  }

  /** Probe every capability once (concurrently); a probe already running is joined. */
  probeAll(): Promise<void> {
    this.inFlight ??= this.runProbes().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async runProbes(): Promise<void> {
    const { logger } = this.opts;
    const signal = this.aborter.signal;
    const { opts } = this;
    const probe =
      opts.probe ??
      ((decl: CapabilityDecl, s: AbortSignal) =>
        probeCapability(decl, {
          timeoutMs: opts.probeTimeoutMs ?? 10_000,
          custom: opts.env,
          signal: s,
          runner: opts.runner,
        }));
    const next = await Promise.all(
      this.states.map(async (old): Promise<CapabilityState> => {
        let r: ProbeResult;
        try {
          r = await probe(old.decl, signal);
        } catch (err) {
          r = { available: false, reason: `probe failed: ${(err as Error).message}` };
        }
        return { decl: old.decl, available: r.available, reason: r.available ? "" : r.reason };
      }),
    );
    if (this.closed) return;
    next.forEach((now, i) => {
      const old = this.states[i];
      if (old && old.available === now.available && old.reason === now.reason) return;
      const what = { capability: describe(now.decl) };
      if (now.available) logger.info(what, "capability available");
      else logger.warn({ ...what, reason: now.reason }, "capability unavailable");
    });
    this.states = next;
  }

  /** Re-probe every probe_interval until close(); the timer never keeps the process up. */
  start(): void {
    if (this.closed || this.timer || this.states.length === 0) return;
    this.timer = setInterval(() => void this.probeAll(), this.opts.probeIntervalMs);
    this.timer.unref();
  }

  /** Stop the timer and kill running probes. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.aborter.abort();
    await this.inFlight;
  }

  /** The capabilities() answer: per name, every declared version with its state. */
  toWire(): Struct {
    const out: Record<string, Struct[]> = {};
    for (const s of this.states) {
      (out[s.decl.name] ??= []).push({
        version: s.decl.version ?? "",
        properties: publicProperties(s.decl),
        available: s.available,
        reason: s.reason,
      });
    }
    return out;
  }

  /** Worker capabilities as a message fragment: "postgresql 13, 15 (unavailable)". */
  private has(name: string): string {
    const versions = this.states
      .filter((s) => s.decl.name === name)
      .map((s) => `${s.decl.version ?? "(no version)"}${s.available ? "" : " (unavailable)"}`);
    return `${name} ${versions.join(", ")}`;
  }

  /** Choose a capability for every required name, or say exactly why not. */
  private choose(reqs: readonly Requirement[]): { req: string; decl: CapabilityDecl }[] {
    const names = [...new Set(reqs.map((r) => r.name))];
    const failures: string[] = [];
    const chosen: { req: string; decl: CapabilityDecl }[] = [];
    for (const name of names) {
      const mine = reqs.filter((r) => r.name === name);
      const declared = this.states.filter((s) => s.decl.name === name);
      if (declared.length === 0) {
        failures.push(
          `build requires ${mine.map((r) => r.text).join(", ")}, but this worker has no ${name} capability`,
        );
        continue;
      }
      // Several requirements on one name must be met by the same capability.
      const matching = declared.filter((s) => mine.every((r) => satisfies(r, s.decl.version)));
      if (matching.length === 0) {
        const unmet = mine.filter((r) => !declared.some((s) => satisfies(r, s.decl.version)));
        const named = (unmet.length > 0 ? unmet : mine).map((r) => r.text).join(", ");
        failures.push(`build requires ${named}, but this worker has ${this.has(name)}`);
        continue;
      }
      const usable = matching.filter((s) => s.available);
      if (usable.length === 0) {
        const why = matching.map((s) => `${describe(s.decl)} is unavailable: ${s.reason}`);
        failures.push(
          `build requires ${mine.map((r) => r.text).join(", ")}, but ${why.join("; ")}`,
        );
        continue;
      }
      const best = usable.map((s) => s.decl).sort(byVersionDescending)[0]!;
      chosen.push({ req: mine.map((r) => r.text).join(", "), decl: best });
    }
    if (failures.length > 0) throw requirementsError(failures.join("; "));
    return chosen;
  }

  /** The Builder's gate: throws BUILDD_ERR_REQUIREMENTS, or says what the build gets. */
  readonly gate: BuildGate = (args): ReturnType<BuildGate> => {
    const reqs = parseBuildRequires(args["build_requires"]);
    const reserved = this.opts.onlyIfRequires;
    if (reserved.length > 0 && !reqs.some((r) => reserved.includes(r.name))) {
      throw requirementsError(
        `this worker only takes builds that require ${reserved.length === 1 ? reserved[0] : `one of ${reserved.join(", ")}`}`,
      );
    }
    if (reqs.length === 0) return { env: {}, logLines: [], extraStatus: {}, secrets: [] };
    const chosen = this.choose(reqs);
    const logLines: string[] = [];
    const capabilities: Struct = {};
    for (const { req, decl } of chosen) {
      const { shown } = mapCapabilities([decl], this.opts.env);
      logLines.push(
        `[buildd] capability ${describe(decl)} chosen for "${req}"${shown.length > 0 ? ` (${shown.join(" ")})` : ""}`,
      );
      capabilities[decl.name] = { version: decl.version ?? "", properties: publicProperties(decl) };
    }
    const { env } = mapCapabilities(
      chosen.map((c) => c.decl),
      this.opts.env,
    );
    // Secret-looking properties (a password for a service) are scrubbed from the build
    // log like a build's own secrets, whatever a step prints.
    const secrets = chosen.flatMap(({ decl }) =>
      Object.entries(decl.properties)
        .filter(([k]) => isSecretProperty(k))
        .map(([, v]) => v),
    );
    return { env, logLines, extraStatus: { capabilities }, secrets };
  };
}
