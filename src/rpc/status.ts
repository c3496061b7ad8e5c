// status() on the wire: the builder's typed snapshot as the protocol's struct.

import type { DownloadSnapshot, StatusSnapshot } from "../protocol/status.js";
import type { XmlRpcStruct, XmlRpcValue } from "./codec.js";

/**
 * Downloads in progress as an extra key: a list of {sha1, bytes, total} structs (total
 * left out when unknown, since not every manager's XML-RPC client accepts nil). Managers
 * ignore keys they do not know, so the protocol's shape is unchanged.
 */
function downloadsToWire(list: readonly DownloadSnapshot[]): XmlRpcValue[] {
  return list.map((d) => {
    const out: XmlRpcStruct = { sha1: d.sha1, bytes: d.bytes };
    if (d.total !== null) out["total"] = d.total;
    return out;
  });
}

export function statusToWire(s: StatusSnapshot): XmlRpcStruct {
  const head: XmlRpcStruct = { builder_status: s.state, builder_version: s.version };
  if (s.downloads !== undefined && s.downloads.length > 0) {
    head["downloads"] = downloadsToWire(s.downloads);
  }
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
