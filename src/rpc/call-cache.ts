// The last few requests of polled methods, decoded once. A manager asks each builder
// for status() every few seconds, and its XML-RPC client writes the same bytes every
// time; decoding them again was most of a status() call's own cost (bench/rpc.ts). The
// decoding is a pure function of the bytes, so a body equal byte for byte to one kept
// here decodes to what it decoded to then: the saved call is given back without reading
// the body again. Only calls whose arguments are all scalars are kept, frozen, so no
// handler can change what the next caller gets. Any other body is decoded as before.

import type { XmlRpcValue } from "./values.js";

/** A kept call: shared by every caller that sent its bytes, so it cannot be changed. */
export interface SharedCall {
  readonly methodName: string;
  readonly params: readonly XmlRpcValue[];
}

/** How many distinct bodies are kept: one per manager client that polls this builder. */
const ENTRIES = 4;
/** Longer bodies are not kept (a polled call is a method name and a few short strings). */
const MAX_BODY = 1024;

interface Entry {
  readonly body: Buffer;
  readonly call: SharedCall;
}

function scalar(v: XmlRpcValue): boolean {
  return v === null || typeof v !== "object";
}

export class CallCache {
  /** Most recently used first. */
  private readonly entries: Entry[] = [];

  /** The call `body` decoded to when it was kept, if it was. */
  get(body: Buffer): SharedCall | undefined {
    const entries = this.entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.body.length === body.length && e.body.equals(body)) {
        if (i > 0) {
          entries.splice(i, 1);
          entries.unshift(e);
        }
        return e.call;
      }
    }
    return undefined;
  }

  /** Keep `call`, just decoded from `body`, if it can be shared safely. */
  remember(body: Buffer, call: SharedCall): void {
    if (body.length > MAX_BODY || !call.params.every(scalar)) return;
    // A copy: the body's memory belongs to the connection that read it.
    const frozen: SharedCall = Object.freeze({
      methodName: call.methodName,
      params: Object.freeze([...call.params]),
    });
    this.entries.unshift({ body: Buffer.from(body), call: frozen });
    if (this.entries.length > ENTRIES) this.entries.pop();
  }
}
