// The one place errors become faults.
//
// A method is a name, a parameter signature and a handler. The dispatcher decodes the
// body, checks the arguments against the signature (so handlers receive narrowed values
// and never see a wrong count or type), calls the handler and encodes the answer.
// Every failure ends here: BuilddErrors map to their registry's fault code with their
// message; anything else is logged with its stack and answered as BUILDD_ERR_INTERNAL.

import type { Logger } from "pino";
import { decodeMethodCall, encodeFault, encodeMethodResponse, type XmlRpcValue } from "./codec.js";
import { BuilddError, ERRORS, badArguments, describeError, isBuilddError } from "../errors.js";
import { isStruct } from "../protocol/values.js";

/** What a parameter may be on the wire. `?` allows nil. */
export type ParamType = "string" | "string?" | "struct" | "any";

export interface MethodDef {
  /** Fixed signature, or "variadic" for echo. */
  readonly params: readonly ParamType[] | "variadic";
  readonly handler: (args: readonly XmlRpcValue[]) => XmlRpcValue | Promise<XmlRpcValue>;
}

export type MethodTable = Readonly<Record<string, MethodDef>>;

const TYPE_NAMES: Record<ParamType, string> = {
  string: "a string",
  "string?": "a string or nil",
  struct: "a struct",
  any: "a value",
};

function matches(type: ParamType, v: XmlRpcValue | undefined): boolean {
  switch (type) {
    case "string":
      return typeof v === "string";
    case "string?":
      return typeof v === "string" || v === null;
    case "struct":
      return isStruct(v);
    case "any":
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
    return encodeFault({ faultCode: err.faultCode, faultString: message });
  }
  // Not raised on purpose (a bug, an I/O error, or a registry error that is not meant for
  // the wire): the registry's BUILDD_ERR_INTERNAL entry decides the fault code.
  log.error({ method: methodName, err }, "unexpected error in method");
  return encodeFault({
    faultCode: ERRORS.BUILDD_ERR_INTERNAL.faultCode,
    faultString: `internal error: ${describeError(err)}`,
  });
}

export interface Dispatcher {
  dispatch(body: Buffer): Promise<string>;
}

export function createDispatcher(methods: MethodTable, log: Logger, maxDepth: number): Dispatcher {
  return {
    async dispatch(body: Buffer): Promise<string> {
      let methodName: string | null = null;
      try {
        const call = decodeMethodCall(body, { maxDepth });
        methodName = call.methodName;
        const def = Object.hasOwn(methods, call.methodName) ? methods[call.methodName] : undefined;
        if (!def) {
          throw new BuilddError(
            "BUILDD_ERR_METHOD_NOT_FOUND",
            `procedure ${call.methodName} not found`,
          );
        }
        checkArguments(call.methodName, def, call.params);
        const result = await def.handler(call.params);
        return encodeMethodResponse(result);
      } catch (err) {
        return faultFor(err, methodName, log);
      }
    },
  };
}
