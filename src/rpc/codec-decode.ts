// Strict XML-RPC decoding on top of saxes (which already enforces well-formedness). The
// plain documents managers send are first read by codec-scan.ts without saxes (a tenth of
// its cost per request); whatever that scanner does not fully understand, saxes reads.
//
// The tree is never built: each open element becomes a frame on an explicit stack and
// each closed one hands its value to its parent, so nesting costs no recursion and the
// depth limit trips while parsing, before a hostile document has been read to its end.

import { isAscii } from "node:buffer";
import { createRequire } from "node:module";
import type { SaxesParser as SaxesParserClass, XMLDecl } from "saxes";
import { BuilddError } from "../errors.js";
import { isStruct } from "../protocol/values.js";
import { Frame, type Output } from "./codec-frame.js";
import { KNOWN, scan } from "./codec-scan.js";
import {
  DEFAULT_DECODE_LIMITS,
  WHITESPACE,
  fail,
  parseScalar,
  setMember,
  show,
  type DecodeLimits,
  type Fault,
  type MethodCall,
  type MethodResponse,
  type XmlRpcValue,
} from "./values.js";

export type Root = "methodCall" | "methodResponse";

/** Elements whose text is content; everywhere else only whitespace may appear. */
// prettier-ignore
const TEXTUAL = new Set([
  "value", "methodName", "name", "string", "int", "i4", "i8", "boolean", "double",
  "dateTime.iso8601", "base64", "nil",
]);

// prettier-ignore
const TYPES = new Set([
  "string", "int", "i4", "i8", "boolean", "double", "dateTime.iso8601", "base64", "nil",
  "struct", "array",
]);

const utf8 = new TextDecoder("utf-8", { fatal: true });

function toFault(v: XmlRpcValue): Fault {
  if (!isStruct(v)) {
    throw fail("<fault> does not hold a struct");
  }
  const code = Object.hasOwn(v, "faultCode") ? v["faultCode"] : undefined;
  const text = Object.hasOwn(v, "faultString") ? v["faultString"] : undefined;
  if (typeof code !== "number" || !Number.isInteger(code)) {
    throw fail("<fault> struct has no integer faultCode");
  }
  if (typeof text !== "string") throw fail("<fault> struct has no string faultString");
  return { faultCode: code, faultString: text };
}

function unexpected(name: string, parent: Frame): BuilddError {
  return fail(`unexpected <${name}> inside <${parent.tag}>`);
}

/** Checks that `child` may open inside `parent`, and prepares the parent's bookkeeping. */
function admit(parent: Frame, child: Frame, root: Root): void {
  const name = child.tag;
  switch (parent.tag) {
    case "#document":
      if (name !== root) throw fail(`expected <${root}> as the root element, got <${name}>`);
      return;
    case "methodCall":
      if (name === "methodName" && parent.name === undefined && parent.children === 0) return;
      if (name === "params" && parent.items === undefined && parent.name !== undefined) {
        parent.items = child.items = [];
        return;
      }
      throw parent.name === undefined
        ? fail(`<methodCall> must start with <methodName>, got <${name}>`)
        : unexpected(name, parent);
    case "methodResponse":
      if (parent.children > 0) throw fail("<methodResponse> must hold one <params> or <fault>");
      if (name === "params") parent.items = child.items = [];
      else if (name !== "fault") throw unexpected(name, parent);
      return;
    case "params":
      if (name !== "param") throw unexpected(name, parent);
      return;
    case "struct":
      if (name !== "member") throw unexpected(name, parent);
      return;
    case "array":
      if (name !== "data" || parent.children > 0) throw unexpected(name, parent);
      parent.items = child.items = [];
      return;
    case "data":
      if (name !== "value") throw unexpected(name, parent);
      return;
    case "param":
    case "fault":
      if (name !== "value") throw unexpected(name, parent);
      if (parent.children > 0) throw fail(`two values in one <${parent.tag}>`);
      return;
    case "member":
      if (name === (parent.children === 0 ? "name" : "value") && parent.children < 2) return;
      throw fail(`<member> must hold one <name> followed by one <value>, got <${name}>`);
    case "value":
      if (!TYPES.has(name)) throw unexpected(name, parent);
      if (parent.children > 0) throw fail("two values in one <value>");
      if (!WHITESPACE.test(parent.text)) throw fail(`text next to <${name}> in one <value>`);
      if (name === "struct") child.struct = {};
      return;
    default:
      throw unexpected(name, parent);
  }
}

/** Hands a closed element's result to its parent. */
function finish(frame: Frame, parent: Frame, out: Output): void {
  switch (frame.tag) {
    case "value": {
      let v: XmlRpcValue;
      if (frame.children === 0) v = frame.text;
      else if (!WHITESPACE.test(frame.text)) throw fail("text next to an element in one <value>");
      else v = frame.value;
      if (parent.tag === "data") parent.items!.push(v);
      else {
        parent.value = v;
        parent.hasValue = true;
      }
      return;
    }
    case "struct":
      parent.value = frame.struct!;
      return;
    case "array":
      if (frame.items === undefined) throw fail("<array> without <data>");
      parent.value = frame.items;
      return;
    case "member":
      if (frame.name === undefined) throw fail("<member> without <name>");
      if (!frame.hasValue) throw fail(`<member> ${show(frame.name)} without <value>`);
      setMember(parent.struct!, frame.name, frame.value);
      return;
    case "name":
      parent.name = frame.text;
      return;
    case "methodName":
      if (WHITESPACE.test(frame.text)) throw fail("empty <methodName>");
      parent.name = frame.text;
      return;
    case "param":
      if (!frame.hasValue) throw fail("<param> without <value>");
      parent.items!.push(frame.value);
      return;
    case "fault":
      if (!frame.hasValue) throw fail("<fault> without <value>");
      parent.fault = toFault(frame.value);
      return;
    case "params":
    case "data":
      return; // their items array is shared with the parent
    case "methodCall":
      if (frame.name === undefined) throw fail("<methodCall> without <methodName>");
      out.call = { methodName: frame.name, params: frame.items ?? [] };
      return;
    case "methodResponse":
      if (frame.fault !== undefined) out.response = { kind: "fault", fault: frame.fault };
      else if (frame.items?.length !== 1) {
        throw fail("<methodResponse> must hold exactly one <param> or a <fault>");
      } else out.response = { kind: "value", value: frame.items[0]! };
      return;
    default:
      parent.value = parseScalar(frame.tag, frame.text);
  }
}

function checkDeclaration(decl: XMLDecl): void {
  if (decl.version !== undefined && decl.version !== "1.0") {
    throw fail(`XML version ${show(decl.version)} is not supported (only 1.0)`);
  }
  const enc = decl.encoding?.toLowerCase();
  if (enc !== undefined && enc !== "utf-8" && enc !== "us-ascii") {
    throw fail(`XML declaration names encoding ${show(decl.encoding!)}; only UTF-8 is accepted`);
  }
}

function toText(body: Buffer | string, ascii: boolean): string {
  let text: string;
  if (typeof body === "string") text = body.charCodeAt(0) === 0xfeff ? body.slice(1) : body;
  // ASCII is valid UTF-8 and holds no byte order mark: read as is, without the decoder.
  else if (ascii) text = body.toString("latin1");
  else {
    try {
      text = utf8.decode(body); // drops a UTF-8 byte order mark
    } catch {
      throw fail("body is not valid UTF-8");
    }
  }
  if (WHITESPACE.test(text)) throw fail("empty body");
  return text;
}

/**
 * The frame stack both readers drive (saxes, or the plain scanner of codec-scan.ts): an
 * element opens, text arrives, an element closes. Every structural check and the depth
 * limit live here, so the two readers cannot disagree about what a document means.
 */
export class Tree {
  private readonly document = new Frame("#document");
  private readonly stack: Frame[] = [this.document];
  readonly out: Output = {};
  top: Frame = this.document;
  private depth = 0;

  constructor(
    private readonly root: Root,
    private readonly maxDepth: number,
  ) {}

  get atDocument(): boolean {
    return this.top === this.document;
  }

  text(t: string): void {
    const top = this.top;
    if (TEXTUAL.has(top.tag)) top.text += t;
    else if (!WHITESPACE.test(t)) throw fail(`unexpected text ${show(t)} inside <${top.tag}>`);
  }

  /** `name` is one of KNOWN (the caller checked). */
  open(name: string): void {
    const frame = new Frame(name);
    admit(this.top, frame, this.root);
    if (name === "value" && ++this.depth > this.maxDepth) {
      throw fail(`values nested deeper than ${this.maxDepth} levels`);
    }
    this.top.children++;
    this.stack.push(frame);
    this.top = frame;
  }

  /** Pops the open element; finish() it with `settle` (saxes defers that, see below). */
  pop(): Frame {
    const frame = this.stack.pop()!;
    this.top = this.stack[this.stack.length - 1]!;
    if (frame.tag === "value") this.depth--;
    return frame;
  }

  settle(frame: Frame): void {
    finish(frame, this.top, this.out);
  }
}

// saxes is loaded when a document first needs it, not with the daemon: the scanner reads
// what managers send, and loading saxes was part of every start-up (bench/startup.ts).
let saxes: typeof SaxesParserClass | null = null;
function saxesParser(): typeof SaxesParserClass {
  return (saxes ??= (createRequire(import.meta.url)("saxes") as typeof import("saxes"))
    .SaxesParser);
}

/** The full reader: saxes enforces all of XML's well-formedness. */
function parseWithSaxes(text: string, tree: Tree): Output {
  const SaxesParser = saxesParser();
  const parser = new SaxesParser<{ xmlns: false; position: false }>({
    xmlns: false,
    position: false,
  });
  // saxes pops an element and emits closetag before it checks the closing tag's name, so
  // each closed element is finished on the next event: a mismatch is reported as one
  // instead of as whatever the half-read element happens to contain.
  let closed: Frame | undefined;
  const settle = (): void => {
    const frame = closed!;
    closed = undefined;
    tree.settle(frame);
  };

  // At most seven handlers: saxes stores each as a new property, and an eighth turns the
  // parser into a dictionary-mode object, which makes parsing several times slower.
  // Hence no "error" handler (saxes then throws) and no "xmldecl" one (checked at the root).
  parser.on("doctype", () => {
    throw fail("DOCTYPE declarations are not allowed");
  });
  parser.on("processinginstruction", (pi) => {
    throw fail(`processing instruction <?${pi.target}?> is not allowed`);
  });
  const onText = (t: string): void => {
    if (closed !== undefined) settle();
    tree.text(t);
  };
  parser.on("text", onText);
  parser.on("cdata", onText);
  parser.on("opentag", (tag) => {
    if (closed !== undefined) settle();
    const name = tag.name;
    if (!KNOWN.has(name)) throw fail(`unknown element <${name}>`);
    for (const attr in tag.attributes) throw fail(`unexpected attribute ${attr} on <${name}>`);
    if (tree.atDocument) checkDeclaration(parser.xmlDecl);
    tree.open(name);
  });
  parser.on("closetag", () => {
    if (closed !== undefined) settle();
    closed = tree.pop();
  });

  try {
    parser.write(text).close();
  } catch (err) {
    if (err instanceof BuilddError) throw err;
    // Line and column tracking would cost a fifth of the parse time on every request.
    let msg = (err instanceof Error ? err.message : String(err)).replace(/\.$/, "");
    if (msg === "unexpected close tag" && closed !== undefined) {
      msg = `mismatched tags: <${closed.tag}> is closed by another tag`;
    }
    throw new BuilddError("BUILDD_ERR_DESERIALIZE", `malformed XML: ${msg}`, { cause: err });
  }
  if (closed !== undefined) settle();
  return tree.out;
}

/**
 * Which reader decodes: "auto" tries the plain scanner first and, if the document is
 * outside its subset or wrong in any way, reads it again with saxes, whose answer (value
 * or error) is the one given. Tests compare the two readers with "scan" and "saxes".
 */
export type Reader = "auto" | "scan" | "saxes";

export function parse(
  body: Buffer | string,
  limits: DecodeLimits,
  root: Root,
  reader: Reader = "auto",
): Output | null {
  // Known from the bytes, cheaply; a string's is found by the scanner.
  const ascii = typeof body === "string" ? undefined : isAscii(body);
  const text = toText(body, ascii === true);
  if (reader !== "saxes") {
    let out: Output | null;
    try {
      out = scan(text, new Tree(root, limits.maxDepth), ascii);
    } catch {
      out = null; // saxes says what is wrong, in its words
    }
    if (out !== null || reader === "scan") return out;
  }
  return parseWithSaxes(text, new Tree(root, limits.maxDepth));
}

function checkLimits(limits: DecodeLimits): DecodeLimits {
  if (!Number.isInteger(limits.maxDepth) || limits.maxDepth < 1) {
    throw new RangeError(`maxDepth must be a positive integer, got ${limits.maxDepth}`);
  }
  return limits;
}

export function decodeMethodCall(
  body: Buffer | string,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): MethodCall {
  return parse(body, checkLimits(limits), "methodCall")!.call!;
}

export function decodeMethodResponse(
  body: Buffer | string,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): MethodResponse {
  return parse(body, checkLimits(limits), "methodResponse")!.response!;
}
