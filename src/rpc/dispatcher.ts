// The one place errors become faults.
//
// A method is a name, a parameter signature and a handler. The dispatcher decodes the
// body, checks the arguments against the signature (so handlers receive narrowed values
// and never see a wrong count or type), calls the handler and encodes the answer.
// Every failure ends here: BuilddErrors map to their registry's fault code with their
// message; anything else is logged with its stack and answered as BUILDD_ERR_INTERNAL.

import type { Logger } from "pino";
import { decodeMethodCall, encodeFault, encodeMethodResponse, type XmlRpcValue } from "./codec.js";
import { CallCache, type SharedCall } from "./call-cache.js";
import { ReplyCache } from "./reply-cache.js";
import { BuilddError, ERRORS, badArguments, describeError, isBuilddError } from "../errors.js";
import { isStruct } from "../protocol/values.js";
import { scrubText } from "../log/scrub.js";

/** What a parameter may be on the wire. `?` allows nil. */
export type ParamType = "string" | "string?" | "struct" | "value";

export interface MethodDef {
  /** Fixed signature, or "variadic" for echo. */
  readonly params: readonly ParamType[] | "variadic";
  readonly handler: (args: readonly XmlRpcValue[]) => XmlRpcValue | Promise<XmlRpcValue>;
  /**
   * Called constantly with the same bytes and mostly answering the same (status()): its
   * last requests are kept decoded (call-cache.ts) and its last reply encoded, sent again
   * while the value is the same (reply-cache.ts).
   */
  readonly polled?: boolean;
}

export type MethodTable = Readonly<Record<string, MethodDef>>;

const TYPE_NAMES: Record<ParamType, string> = {
  string: "a string",
  "string?": "a string or nil",
  struct: "a struct",
  value: "a value",
};

function matches(type: ParamType, v: XmlRpcValue | undefined): boolean {
  switch (type) {
    case "string":
      return typeof v === "string";
    case "string?":
      return typeof v === "string" || v === null;
    case "struct":
      return isStruct(v);
    case "value":
      return v !== undefined;
  }
}

function checkArguments(name: string, def: MethodDef, args: readonly XmlRpcValue[]): void {
  if (def.params === "variadic") return;
  if (args.length !== def.params.length) {
    throw badArguments(
      `${name}() takes exactly ${def.params.length} argument${def.params.length === 1 ? "" : "s"} (${args.length} given)`,
    );
  }
  for (let i = 0; i < def.params.length; i++) {
    const type = def.params[i]!;
    if (!matches(type, args[i])) {
      throw badArguments(`${name}() argument ${i + 1} must be ${TYPE_NAMES[type]}`);
    }
  }
}

function faultFor(err: unknown, methodName: string | null, log: Logger): string {
  if (isBuilddError(err) && err.faultCode !== null) {
    const message =
      err.code === "BUILDD_ERR_DESERIALIZE"
        ? `Can't deserialize input: ${err.message}`
        : err.code === "BUILDD_ERR_SERIALIZE"
          ? `Can't serialize output: ${err.message}`
          : err.message;
    log.info({ method: methodName, code: err.code, fault: message }, "call refused");
    // A fault may quote what the caller sent (a URL, a value): never a credential in it.
    return encodeFault({ faultCode: err.faultCode, faultString: scrubText(message) });
  }
  // Not raised on purpose (a bug, an I/O error, or a registry error that is not meant for
  // the wire): the registry's BUILDD_ERR_INTERNAL entry decides the fault code.
  log.error({ method: methodName, err }, "unexpected error in method");
  return encodeFault({
    faultCode: ERRORS.BUILDD_ERR_INTERNAL.faultCode,
    faultString: scrubText(`internal error: ${describeError(err)}`),
  });
}

export interface Dispatcher {
  /**
   * The encoded methodResponse (UTF-8), a fault included: at once when the method
   * answers synchronously (status(): no promise and no turn of the loop), else a promise.
   */
  dispatch(body: Buffer): Buffer | Promise<Buffer>;
}

/**
 * Told of every call once it is answered (the rpc metrics): the method when it is one of
 * the table's (null for an unknown name or an unreadable body, so callers cannot grow a
 * label set), the fault code (null: answered normally), and the seconds it took.
 */
export type CallObserver = (
  method: string | null,
  faultCode: number | null,
  seconds: number,
) => void;

export function createDispatcher(
  methods: MethodTable,
  log: Logger,
  maxDepth: number,
  observe?: CallObserver,
): Dispatcher {
  // A Map: the name comes from the request, and a Map has no inherited keys to guard.
  const table = new Map<string, { def: MethodDef; cache: ReplyCache | null }>();
  for (const name of Object.keys(methods)) {
    const def = methods[name]!;
    table.set(name, { def, cache: def.polled === true ? new ReplyCache() : null });
  }
  const polledCalls = new CallCache();
  const limits = { maxDepth };

  const failed = (err: unknown, methodName: string | null): { bytes: Buffer; code: number } => ({
    // The code faultFor() answers with: the error's own, else BUILDD_ERR_INTERNAL's.
    code:
      isBuilddError(err) && err.faultCode !== null
        ? err.faultCode
        : ERRORS.BUILDD_ERR_INTERNAL.faultCode,
    bytes: Buffer.from(faultFor(err, methodName, log), "utf8"),
  });

  // Made once, not per call: `started` is passed in (status() is the hot path).
  const done = (known: string | null, fault: number | null, started: number): void =>
    observe?.(known, fault, (performance.now() - started) / 1000);

  return {
    dispatch(body: Buffer): Buffer | Promise<Buffer> {
      const started = observe ? performance.now() : 0;
      let methodName: string | null = null;
      let entry: { def: MethodDef; cache: ReplyCache | null } | undefined;
      let result: XmlRpcValue | Promise<XmlRpcValue>;
      try {
        const kept = polledCalls.get(body);
        const call: SharedCall = kept ?? decodeMethodCall(body, limits);
        methodName = call.methodName;
        entry = table.get(call.methodName);
        if (!entry) {
          throw new BuilddError(
            "BUILDD_ERR_METHOD_NOT_FOUND",
            `procedure ${call.methodName} not found`,
          );
        }
        checkArguments(call.methodName, entry.def, call.params);
        if (kept === undefined && entry.cache !== null) polledCalls.remember(body, call);
        result = entry.def.handler(call.params);
        if (!(result instanceof Promise)) {
          const bytes = encode(entry.cache, result);
          done(methodName, null, started);
          return bytes;
        }
      } catch (err) {
        const f = failed(err, methodName);
        done(entry ? methodName : null, f.code, started);
        return f.bytes;
      }
      const known = entry;
      const name = methodName;
      return result.then(
        (value) => {
          try {
            const bytes = encode(known.cache, value);
            done(name, null, started);
            return bytes;
          } catch (err) {
            const f = failed(err, name);
            done(name, f.code, started);
            return f.bytes;
          }
        },
        (err: unknown) => {
          const f = failed(err, name);
          done(name, f.code, started);
          return f.bytes;
        },
      );
    },
  };
}

function encode(cache: ReplyCache | null, value: XmlRpcValue): Buffer {
  return cache ? cache.encode(value) : Buffer.from(encodeMethodResponse(value), "utf8");
}
