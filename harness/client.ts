// A small XML-RPC client over our own codec, for tests and the transcript runner. The
// codec is checked separately against two independent peers (the xmlrpc package and
// Python's xmlrpc.client), so using it here does not make tests circular.

import { decodeMethodResponse, encodeMethodCall, type XmlRpcValue } from "../src/rpc/codec.js";

export class RpcFault extends Error {
  constructor(
    readonly faultCode: number,
    readonly faultString: string,
  ) {
    super(`Fault ${faultCode}: ${faultString}`);
    this.name = "RpcFault";
  }
}

export interface RpcClient {
  call(method: string, ...params: XmlRpcValue[]): Promise<XmlRpcValue>;
  /** POST raw bytes to /rpc; returns status, content type and body text. */
  raw(
    body: string | Buffer,
    init?: { method?: string; path?: string },
  ): Promise<{ status: number; contentType: string | null; text: string }>;
}

/** HTTP Basic credentials for a builder with [auth] password set. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

export function createClient(baseUrl: string, credentials?: Credentials): RpcClient {
  const auth: Record<string, string> = credentials
    ? { authorization: basicHeader(credentials) }
    : {};
  const raw: RpcClient["raw"] = async (body, init = {}) => {
    const method = init.method ?? "POST";
    const res = await fetch(`${baseUrl}${init.path ?? "/rpc"}`, {
      method,
      headers: { "content-type": "text/xml", ...auth },
      ...(method === "GET" || method === "HEAD" ? {} : { body }),
    });
    return {
      status: res.status,
      contentType: res.headers.get("content-type"),
      text: await res.text(),
    };
  };
  return {
    raw,
    async call(method, ...params) {
      const res = await raw(encodeMethodCall(method, params));
      if (res.status !== 200) throw new Error(`HTTP ${res.status} from /rpc: ${res.text}`);
      const decoded = decodeMethodResponse(res.text);
      if (decoded.kind === "fault") {
        throw new RpcFault(decoded.fault.faultCode, decoded.fault.faultString);
      }
      return decoded.value;
    },
  };
}
