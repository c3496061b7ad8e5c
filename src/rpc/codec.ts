// Our own strict XML-RPC codec. The `xmlrpc` package is not used on the server side: its
// parser accepts malformed documents and lets a `__proto__` member replace a struct's
// prototype, and its serializer throws on control characters and writes local time.
//
// Decoding: <i4>, <int> and <i8> all give a number and are refused outside
// Number.MAX_SAFE_INTEGER; struct members are always own properties (a `__proto__`
// member included), so test membership with Object.hasOwn, not `in`.
// Encoding: integers within int32 become <int>, other finite numbers <double>;
// characters XML 1.0 cannot carry become U+FFFD; Dates are written in UTC.

export type {
  DecodeLimits,
  Fault,
  MethodCall,
  MethodResponse,
  XmlRpcStruct,
  XmlRpcValue,
} from "./values.js";
export { decodeMethodCall, decodeMethodResponse } from "./codec-decode.js";
export { encodeFault, encodeMethodCall, encodeMethodResponse } from "./codec-encode.js";
