// The commands' client for a running builder: XML-RPC calls on /rpc (our own codec) and
// GETs of /filecache and the JSON API, over node:http with keep-alive, so a command
// polling status() twice a second reuses one connection. Failures become messages that
// say what to check (is it running, are the credentials right), never a stack trace.

import http from "node:http";
import https from "node:https";
import {
  decodeMethodResponse,
  encodeMethodCall,
  type XmlRpcStruct,
  type XmlRpcValue,
} from "../rpc/codec.js";
import { isStruct } from "../protocol/values.js";
import { CliError } from "./errors.js";
import type { Target } from "./target.js";

export class BuilderFault extends Error {
  constructor(
    readonly faultCode: number,
    readonly faultString: string,
  ) {
    super(`the builder refused: ${faultString} (fault ${faultCode})`);
    this.name = "BuilderFault";
  }
}

export interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: http.IncomingMessage;
}

const agents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: 8 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: 8 }),
};

/** Certificate errors: the builder's certificate is not one this machine trusts. */
const CERT_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/;

export class BuilderClient {
  constructor(readonly target: Target) {}

  /** Send a request; resolves with the response (its body not read yet). */
  request(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: string,
  ): Promise<Response> {
    const url = new URL(this.target.base + path);
    const auth = this.target.authorization;
    const tls = url.protocol === "https:";
    return new Promise((resolve, reject) => {
      const req = (tls ? https : http).request(
        url,
        {
          method,
          agent: tls ? agents["https:"] : agents["http:"],
          headers: { ...headers, ...(auth === null ? {} : { authorization: auth }) },
        },
        (res) => {
          if (res.statusCode === 401) {
            res.resume();
            reject(
              new CliError(
                `the builder at ${this.target.base} wants credentials${auth === null ? "" : " and refused the ones given"} (HTTP 401): ` +
                  "put them in the URL (--url http://USER:PASSWORD@HOST:PORT) or in the [auth] section of --config",
              ),
            );
            return;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
        },
      );
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (tls && CERT_ERRORS.test(err.code ?? "")) {
          reject(
            new CliError(
              `the builder at ${this.target.base} presented a certificate this machine does not trust (${err.code}): ` +
                "for a self-signed [tls] cert, run with NODE_EXTRA_CA_CERTS=/path/to/cert.pem",
            ),
          );
          return;
        }
        reject(
          new CliError(
            `cannot reach the builder at ${this.target.base} (${err.code ?? err.message}): ` +
              "is `buildd serve` running there? Give its address with --url or --config",
          ),
        );
      });
      req.end(body);
    });
  }

  /** GET a path and read the whole body (small answers only: status, JSON). */
  async getText(
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
    const res = await this.request("GET", path, headers);
    return { status: res.status, headers: res.headers, text: await readAll(res.body) };
  }

  async call(method: string, ...params: XmlRpcValue[]): Promise<XmlRpcValue> {
    const res = await this.request(
      "POST",
      "/rpc",
      { "content-type": "text/xml" },
      encodeMethodCall(method, params),
    );
    const text = await readAll(res.body);
    if (res.status !== 200) {
      throw new CliError(
        `the builder at ${this.target.base} answered ${method}() with HTTP ${res.status}: ${text.slice(0, 200)}`,
      );
    }
    let decoded;
    try {
      decoded = decodeMethodResponse(text);
    } catch (err) {
      throw new CliError(
        `the answer to ${method}() from ${this.target.base} is not XML-RPC (${err instanceof Error ? err.message : String(err)}): is that a builder?`,
      );
    }
    if (decoded.kind === "fault")
      throw new BuilderFault(decoded.fault.faultCode, decoded.fault.faultString);
    return decoded.value;
  }

  async status(): Promise<XmlRpcStruct> {
    const s = await this.call("status");
    if (!isStruct(s)) {
      throw new CliError(`status() from ${this.target.base} is not a struct: is that a builder?`);
    }
    return s;
  }
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === "string" ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString("utf8");
}

/** A string member of a status() struct, or null. */
export function str(s: XmlRpcStruct, key: string): string | null {
  const v = s[key];
  return typeof v === "string" ? v : null;
}

/** The part of a wire name after its prefix: "BuilderStatus.IDLE" → "IDLE". */
export function shortName(name: string | null): string {
  return name === null ? "?" : name.replace(/^Build(er)?Status\./, "");
}
