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
// (comments, CDATA, DOCTYPE) and "<?" past the declaration. A document wholly in ASCII
// cannot hold the non-ASCII ones, and the scanner meets the rest where they can stand:
// "<!" and "<?" as a tag that spells no known name, the others in text (a tag must spell
// a known name exactly, and the declaration matches DECLARATION). So only other
// documents are searched whole, which was a fifth of a status() call's decoding.
const OUTSIDE_SUBSET =
  // eslint-disable-next-line no-control-regex
  /[\x00-\x08\x0b-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|\]\]>|<!|.<\?/s;
// eslint-disable-next-line no-control-regex
const OUTSIDE_SUBSET_IN_TEXT = /[\x00-\x08\x0b-\x1f]|\]\]>/;
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
// The declaration as our encoder and common clients write it; anything else goes to saxes
// (which also refuses other versions and encodings with their own messages). Sticky, so
// that its end is read from lastIndex without a match array.
const DECLARATION =
  /<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(?:"1\.0"|'1\.0')(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["'])(?:[Uu][Tt][Ff]-8|[Uu][Ss]-[Aa][Ss][Cc][Ii][Ii])\1)?[ \t\n]*\?>/y;
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

/** Where a tag's name ends in text[start, end): the blanks XML allows before `>` dropped. */
function nameEnd(text: string, start: number, end: number): number {
  while (end > start) {
    const c = text.charCodeAt(end - 1);
    if (c !== 32 && c !== 9 && c !== 10) break;
    end--;
  }
  return end;
}

/** The known element names, by length: a tag is matched in place, with no substring. */
const KNOWN_BY_LENGTH: string[][] = [];
for (const name of KNOWN) (KNOWN_BY_LENGTH[name.length] ??= []).push(name);

/**
 * Whether `text` holds `word` at `at`. By character codes: startsWith with a position is a
 * call into the runtime, which was a third of the scan's time on a status() call.
 */
function spells(text: string, at: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) {
    if (text.charCodeAt(at + i) !== word.charCodeAt(i)) return false;
  }
  return true;
}

/** The known element name spelled by text[start, end) exactly, else null. */
function knownName(text: string, start: number, end: number): string | null {
  const candidates = KNOWN_BY_LENGTH[end - start];
  if (candidates === undefined) return null;
  for (let i = 0; i < candidates.length; i++) {
    if (spells(text, start, candidates[i]!)) return candidates[i]!;
  }
  return null;
}

/**
 * Read `text` into `tree`. Returns its output, or null when saxes must read the document
 * instead; an XML-RPC error thrown by the tree means the same (the caller retries).
 * `ascii`: whether the text is known to hold only ASCII (the caller may know it from
 * the bytes more cheaply than by searching the string).
 */
export function scan(text: string, tree: ScanTarget, ascii = !NON_ASCII.test(text)): Output | null {
  if (!ascii && OUTSIDE_SUBSET.test(text)) return null;
  let pos = 0;
  if (text.startsWith("<?")) {
    DECLARATION.lastIndex = 0;
    if (!DECLARATION.test(text)) return null;
    pos = DECLARATION.lastIndex;
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
        if (OUTSIDE_SUBSET_IN_TEXT.test(raw)) return null;
        const t = raw.includes("&") ? unescape(raw) : raw;
        if (t === null) return null;
        tree.text(t);
      }
    }
    if (lt < 0) break;
    const gt = text.indexOf(">", lt + 1);
    if (gt < 0) return null;
    if (text.charCodeAt(lt + 1) === SLASH) {
      if (open === 0) return null;
      const tag = tree.top.tag;
      const start = lt + 2;
      if (nameEnd(text, start, gt) - start !== tag.length || !spells(text, start, tag)) {
        return null;
      }
      tree.settle(tree.pop());
      if (--open === 0) rootDone = true;
    } else {
      if (rootDone) return null;
      const selfClosing = text.charCodeAt(gt - 1) === SLASH;
      const name = knownName(text, lt + 1, nameEnd(text, lt + 1, selfClosing ? gt - 1 : gt));
      if (name === null) return null;
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
