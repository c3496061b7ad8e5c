// The layers of src/, bottom to top, and the rules that keep imports pointing down.
// `npm run layers` (part of `npm test`) checks the tree against them with dependency-cruiser;
// test/layers.test.ts checks that every module of src/ belongs to exactly one layer and that
// the rules catch an upward import and a cycle in a fixture tree.
//
// Each layer may import its own modules and those of the layers it lists in `may`, nothing
// else of ours. Paths are relative to the directory cruised from (the repository root, or a
// fixture's root in the tests), so the same table judges both.

/** @typedef {{ name: string, path: string, may: string[], why: string }} Layer */

/** @type {Layer[]} */
export const LAYERS = [
  // ── leaves: the shared vocabulary everything else speaks ───────────────────────────────
  { name: "errors", path: "^src/errors\\.ts$", may: [], why: "the one error registry" },
  { name: "auth", path: "^src/auth\\.ts$", may: [], why: "HTTP Basic checks, shared by edges" },
  {
    name: "protocol",
    path: "^src/protocol/",
    may: ["errors"],
    why: "states, statuses, neutral values, names, the capability gate port",
  },
  {
    name: "log",
    path: "^src/log/",
    may: ["protocol", "errors"],
    why: "the build log and the scrubber",
  },
  {
    name: "config",
    path: "^src/config/",
    may: ["protocol", "errors"],
    why: "the configuration, a leaf that others read",
  },
  // ── resources ─────────────────────────────────────────────────────────────────────────
  { name: "state", path: "^src/state/", may: ["errors"], why: "the SQLite file and locks" },
  {
    name: "process",
    path: "^src/process/",
    may: ["log", "protocol", "errors"],
    why: "the one process runner",
  },
  {
    name: "filecache",
    path: "^src/filecache/",
    may: ["state", "log", "protocol", "errors"],
    why: "the SHA-1 store; it knows nothing of builds",
  },
  {
    name: "capabilities",
    path: "^src/capabilities/",
    may: ["process", "log", "protocol", "config", "errors"],
    why: "what this worker can do; plugs into the builder through protocol/gate.ts",
  },
  // ── builds ────────────────────────────────────────────────────────────────────────────
  {
    name: "backends",
    path: "^src/backends/",
    may: ["process", "log", "protocol", "errors"],
    why: "where steps run: host, chroot",
  },
  {
    name: "buildtypes",
    path: "^src/buildtypes/",
    may: ["backends", "log", "protocol", "errors"],
    why: "arguments → steps, exit codes → results",
  },
  {
    name: "builder",
    path: "^src/builder/",
    may: ["buildtypes", "backends", "filecache", "process", "state", "log", "protocol", "errors"],
    why: "the one state machine and its journal; never capabilities (they come through the gate)",
  },
  // ── edges: wire formats in, typed calls out; collaborators are handed in as deps ──────
  {
    name: "rpc",
    path: "^src/rpc/",
    may: ["protocol", "errors", "auth", "log"],
    why: "XML-RPC: codec, dispatcher, methods (faults pass the scrubber of log/)",
  },
  {
    name: "web",
    path: "^src/web/",
    may: ["protocol", "errors", "auth", "log"],
    why: "the Express app for people and Prometheus",
  },
  {
    name: "buildbot",
    path: "^src/buildbot/",
    may: ["backends", "process", "protocol", "errors", "auth", "log"],
    why: "the Buildbot worker: its steps run through the same runner, sandbox and path checks as a Launchpad build's",
  },
  // ── the listener, then composition ────────────────────────────────────────────────────
  {
    name: "server",
    path: "^src/server\\.ts$",
    may: ["rpc", "filecache/http.ts", "web", "auth"],
    why: "the one listener: /rpc and /filecache on the fast path, the rest to web/",
  },
  {
    name: "top",
    path: "^src/(app|cli|host-setup|listener|logger|version)\\.ts$|^src/cli/",
    may: ["*"],
    why: "composition root and command line: may wire anything",
  },
];

const byName = new Map(LAYERS.map((l) => [l.name, l]));

/** A `may` entry is a layer's name, or one module of a layer ("filecache/http.ts"). */
function pathOf(entry) {
  if (entry.includes("/")) return `^src/${entry.replaceAll(".", "\\.")}$`;
  const layer = byName.get(entry);
  if (layer === undefined) throw new Error(`.dependency-cruiser.mjs: no layer named ${entry}`);
  return layer.path;
}

/** One forbidden rule per layer: nothing of ours outside itself and what it may import. */
function layerRule(layer) {
  if (layer.may.includes("*")) return [];
  return [
    {
      name: `layer-${layer.name}`,
      comment: `${layer.name} (${layer.why}) may import only ${layer.may.join(", ") || "nothing of ours"}`,
      severity: "error",
      from: { path: layer.path },
      to: { path: "^src/", pathNot: [layer.path, ...layer.may.map(pathOf)] },
    },
  ];
}

/** The process that spawns every command (src/process/spawner.ts forks it). */
const SPAWN_HELPER = "^src/process/spawn-helper\\.ts$";
/** Its other side, which forks it. */
const SPAWNER = "^src/process/spawner\\.ts$";

/** The layers from which the codec may be imported: rpc/ itself and composition. */
const CODEC_USERS = ["rpc", "top"].map(pathOf);

export default {
  forbidden: [
    ...LAYERS.flatMap(layerRule),
    {
      name: "no-cycles",
      comment: "No module reaches itself through its imports, type-only imports included.",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "codec-only-in-rpc",
      comment:
        "The XML-RPC wire format stays at its edge: below rpc/ modules speak protocol/values.",
      severity: "error",
      from: { path: "^src/", pathNot: CODEC_USERS },
      to: { path: "^src/rpc/codec[^/]*\\.ts$" },
    },
    {
      name: "spawn-only-in-the-spawn-helper",
      comment:
        "Every process starts through src/process/, so every one is isolated and killed, " +
        "and is spawned by the spawn helper, so that no spawn holds up (or forks) the " +
        "builder; spawner.ts only forks the helper itself.",
      severity: "error",
      from: { path: "^src/", pathNot: [SPAWN_HELPER, SPAWNER] },
      to: { path: "^(node:)?child_process$" },
    },
    {
      name: "execa-only-in-the-spawn-helper",
      comment: "Commands are spawned, with execa, in the spawn helper and nowhere else.",
      severity: "error",
      from: { path: "^src/", pathNot: SPAWN_HELPER },
      to: { path: "(^|/)node_modules/execa/" },
    },
    {
      name: "spawn-helper-is-an-entry",
      comment:
        "The spawn helper's module runs as a process of its own (spawner.ts forks it); nothing imports it.",
      severity: "error",
      from: { path: "^src/" },
      to: { path: SPAWN_HELPER },
    },
    {
      name: "express-only-in-web",
      comment:
        "Express serves people (web/), wired by the top layer; /rpc and /filecache stay on node:http.",
      severity: "error",
      from: { path: "^src/", pathNot: ["web", "top"].map(pathOf) },
      to: { path: "(^|/)node_modules/express/" },
    },
    {
      name: "src-not-tests",
      comment: "harness/, test/, bench/ and scripts/ may import src/; src/ never imports them.",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(harness|test|bench|scripts)/" },
    },
    {
      name: "resolvable",
      comment: "An import that cannot be resolved cannot be judged: fix the path.",
      severity: "error",
      from: { path: "^src/" },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // Type-only imports couple modules too: a type from an upper layer is an upward import.
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(dist|node_modules)/" },
  },
};
