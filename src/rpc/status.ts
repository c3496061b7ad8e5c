// status() on the wire: the builder's typed snapshot as the protocol's struct.

import type { StatusSnapshot } from "../protocol/status.js";
import type { XmlRpcStruct } from "./codec.js";

export function statusToWire(s: StatusSnapshot): XmlRpcStruct {
  const head = { builder_status: s.state, builder_version: s.version };
  const b = s.build;
  if (!b) return head;
  // Build-type keys first, so they can never replace the protocol's own keys.
  const out: XmlRpcStruct = { ...b.extra, ...head, build_id: b.id };
  if (b.logtail !== undefined) out["logtail"] = b.logtail;
  if (b.result !== undefined) out["build_status"] = b.result;
  if (b.filemap !== undefined) out["filemap"] = { ...b.filemap };
  if (b.dependencies !== undefined) out["dependencies"] = b.dependencies;
  if (b.cleaning) out["cleaning"] = true;
  return out;
}
