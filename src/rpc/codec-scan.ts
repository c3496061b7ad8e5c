// The plain reader: XML-RPC documents in the subset of XML that managers actually send
// (a declaration, elements without attributes, text with the five named entities), read
// with indexOf over the string instead of saxes's state machine per character. It is an
// accelerator, not a second parser to trust: it answers only when the document lies
// wholly inside that subset and is well-formed there, and otherwise returns null (or
// throws) so that saxes reads it again and gives the answer, value or error. Anything
// unusual (comments, CDATA, a DOCTYPE, processing instructions, character references,
// carriage returns, attributes, an unknown or mismatched tag) goes to saxes.
//
// Both readers drive the same frame stack (codec-decode.ts's Tree), so every XML-RPC
// check (structure, depth, scalar syntax) is the same code whichever reads the bytes.

import type { Frame, Output } from "./codec-frame.js";

// prettier-ignore
export const KNOWN = new Set([
  "methodCall", "methodResponse", "methodName", "params", "param", "fault", "value", "struct",
  "member", "name", "array", "data", "string", "int", "i4", "i8", "boolean", "double",
  "dateTime.iso8601", "base64", "nil",
]);

/** What the scanner drives: codec-decode.ts's Tree. */
export interface ScanTarget {
  readonly out: Output;
  readonly top: Frame;
  text(t: string): void;
  open(name: string): void;
  pop(): Frame;
  settle(frame: Frame): void;
}

// Left to saxes: characters XML forbids (or that need its end-of-line handling: \r), a
// lone surrogate (a string body may hold one), "]]>" (forbidden in text), "<!"
// (comments, CDATA, DOCTYPE) and "<?" past the declaration.
const OUTSIDE_SUBSET =
  // eslint-disable-next-line no-control-regex
  /[\x00-\x08\x0b-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|\]\]>|<!|.<\?/s;
// The declaration as our encoder and common clients write it; anything else goes to saxes
// (which also refuses other versions and encodings with their own messages).
const DECLARATION =
  /^<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(?:"1\.0"|'1\.0')(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["'])(?:[Uu][Tt][Ff]-8|[Uu][Ss]-[Aa][Ss][Cc][Ii][Ii])\1)?[ \t\n]*\?>/;
const BLANK = /^[ \t\n]*$/;
/** An `&` that does not start one of the five named entities. */
const OTHER_AMPERSAND = /&(?!(?:amp|lt|gt|quot|apos);)/;
const ENTITY = /&(?:amp|lt|gt|quot|apos);/g;
const ENTITY_CHARS: Readonly<Record<string, string>> = {
  "&amp;": "&",
  "&lt;": "<",
  "&gt;": ">",
  "&quot;": '"',
  "&apos;": "'",
};
const SLASH = 47;

/** The text with the five named entities replaced; null if any other `&` is in it. */
function unescape(raw: string): string | null {
  if (OTHER_AMPERSAND.test(raw)) return null;
  return raw.replace(ENTITY, (e) => ENTITY_CHARS[e]!);
}

/** A tag's name with the blanks XML allows before `>` removed. */
function tagName(raw: string): string {
  let end = raw.length;
  while (end > 0) {
    const c = raw.charCodeAt(end - 1);
    if (c !== 32 && c !== 9 && c !== 10) break;
    end--;
  }
  return end === raw.length ? raw : raw.slice(0, end);
}

/**
 * Read `text` into `tree`. Returns its output, or null when saxes must read the document
 * instead; an XML-RPC error thrown by the tree means the same (the caller retries).
 */
export function scan(text: string, tree: ScanTarget): Output | null {
  if (OUTSIDE_SUBSET.test(text)) return null;
  let pos = 0;
  if (text.startsWith("<?")) {
    const decl = DECLARATION.exec(text);
    if (decl === null) return null;
    pos = decl[0].length;
  }
  const n = text.length;
  let open = 0;
  let rootDone = false;
  while (pos < n) {
    const lt = text.indexOf("<", pos);
    const end = lt < 0 ? n : lt;
    if (end > pos) {
      const raw = text.slice(pos, end);
      if (open === 0) {
        if (!BLANK.test(raw)) return null;
      } else {
        const t = raw.includes("&") ? unescape(raw) : raw;
        if (t === null) return null;
        tree.text(t);
      }
    }
    if (lt < 0) break;
    const gt = text.indexOf(">", lt + 1);
    if (gt < 0) return null;
    if (text.charCodeAt(lt + 1) === SLASH) {
      if (open === 0 || tagName(text.slice(lt + 2, gt)) !== tree.top.tag) return null;
      tree.settle(tree.pop());
      if (--open === 0) rootDone = true;
    } else {
      if (rootDone) return null;
      const selfClosing = text.charCodeAt(gt - 1) === SLASH;
      const name = tagName(text.slice(lt + 1, selfClosing ? gt - 1 : gt));
      if (!KNOWN.has(name)) return null;
      tree.open(name);
      if (selfClosing) {
        tree.settle(tree.pop());
        if (open === 0) rootDone = true;
      } else {
        open++;
      }
    }
    pos = gt + 1;
  }
  return rootDone ? tree.out : null;
}
