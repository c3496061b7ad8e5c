// The decoder's working state, shared by the saxes-based decoder (codec-decode.ts) and the
// fast scanner of plain documents (codec-scan.ts): one element being read, and what a
// whole document decodes to. In a module of its own so that neither imports the other.

import type { Fault, MethodCall, MethodResponse, XmlRpcStruct, XmlRpcValue } from "./values.js";

export type Output = { call?: MethodCall; response?: MethodResponse };

export class Frame {
  text = "";
  children = 0;
  hasValue = false;
  value: XmlRpcValue = null;
  name: string | undefined = undefined;
  items: XmlRpcValue[] | undefined = undefined;
  struct: XmlRpcStruct | undefined = undefined;
  fault: Fault | undefined = undefined;
  constructor(readonly tag: string) {}
}
