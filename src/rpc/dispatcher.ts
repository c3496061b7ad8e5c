// The one place errors become faults.
//
// A method is a name, a parameter signature and a handler. The dispatcher decodes the
// body, checks the arguments against the signature (so handlers receive narrowed values
// and never see a wrong count or type), calls the handler and encodes the answer.
// Every failure ends here: BuilddErrors map to their registry's fault code with their
// message; anything else is logged with its stack and answered as BUILDD_ERR_INTERNAL.

import type { Logger } from "pino";
import { decodeMethodCall, encodeFault, encodeMethodResponse, type XmlRpcValue } from "./codec.js";
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
   * Keep the last reply encoded and send it again while the value is the same (status():
   * polled constantly, rarely changed). See reply-cache.ts.
   */
  readonly cacheReply?: boolean;
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
  def.params.forEach((type, i) => {
    if (!matches(type, args[i])) {
      throw badArguments(`${name}() argument ${i + 1} must be ${TYPE_NAMES[type]}`);
    }
  });
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
  /** The encoded methodResponse (UTF-8), a fault included. */
  dispatch(body: Buffer): Promise<Buffer>;
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
  const caches = new Map<MethodDef, ReplyCache>();
  for (const name of Object.keys(methods)) {
    const def = methods[name]!;
    if (def.cacheReply === true) caches.set(def, new ReplyCache());
  }
  const limits = { maxDepth };
  return {
    async dispatch(body: Buffer): Promise<Buffer> {
      const started = observe ? performance.now() : 0;
      let methodName: string | null = null;
      let known: string | null = null;
      let fault: number | null = null;
      try {
        const call = decodeMethodCall(body, limits);
        methodName = call.methodName;
        const def = Object.hasOwn(methods, call.methodName) ? methods[call.methodName] : undefined;
        if (!def) {
          throw new BuilddError(
            "BUILDD_ERR_METHOD_NOT_FOUND",
            `procedure ${call.methodName} not found`,
          );
        }
        known = call.methodName;
        checkArguments(call.methodName, def, call.params);
        const result = await def.handler(call.params);
        const cache = caches.get(def);
        return cache ? cache.encode(result) : Buffer.from(encodeMethodResponse(result), "utf8");
      } catch (err) {
        // The code faultFor() answers with: the error's own, else BUILDD_ERR_INTERNAL's.
        fault =
          isBuilddError(err) && err.faultCode !== null
            ? err.faultCode
            : ERRORS.BUILDD_ERR_INTERNAL.faultCode;
        return Buffer.from(faultFor(err, methodName, log), "utf8");
      } finally {
        observe?.(known, fault, (performance.now() - started) / 1000);
      }
    },
  };
}
