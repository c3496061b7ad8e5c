// The plain scanner (src/rpc/codec-scan.ts) against saxes: whenever the scanner answers,
// saxes must give the very same value; where saxes refuses a document, the scanner must
// not answer. Checked on real calls, on hand-made edge cases and on thousands of
// mutations of valid documents.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeMethodCall, encodeMethodResponse, type XmlRpcValue } from "../src/rpc/codec.js";
import { parse, type Root } from "../src/rpc/codec-decode.js";
import type { Output } from "../src/rpc/codec-frame.js";

const LIMITS = { maxDepth: 64 };

function saxes(body: string, root: Root): { out: Output } | { error: string } {
  try {
    return { out: parse(body, LIMITS, root, "saxes")! };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function scanned(body: string | Buffer, root: Root): Output | null {
  try {
    return parse(body, LIMITS, root, "scan");
  } catch {
    return null;
  }
}

/**
 * The scanner agrees with saxes on `body`, given as a string and as the bytes a request
 * brings (which take another way: the bytes tell whether the text is all ASCII); returns
 * whether the scanner answered.
 */
function agrees(body: string, root: Root = "methodCall"): boolean {
  const ref = saxes(body, root);
  const got = scanned(body, root);
  const fromBytes = scanned(Buffer.from(body, "utf8"), root);
  // A lone surrogate has no UTF-8 form: its bytes are another document.
  if (!/[\ud800-\udfff]/.test(body)) {
    assert.deepEqual(fromBytes, got, `bytes and string read differently: ${JSON.stringify(body)}`);
  }
  if (got === null) return false;
  assert.ok("out" in ref, `scanner accepted what saxes refuses (${JSON.stringify(ref)}): ${body}`);
  assert.deepEqual(got, ref.out, body);
  return true;
}

const VALUES: XmlRpcValue[] = [
  "plain",
  "a < b & c > d \"quoted\" 'apostrophe'",
  "multi\nline\ttext",
  "",
  42,
  -7,
  3.25,
  true,
  false,
  null,
  new Date(Date.UTC(2026, 11, 2, 6, 40, 0)),
  Buffer.from("hello, base64"),
  [1, "two", [3, [4]]],
  { sha1: "a".repeat(40), url: "http://librarian/x?a=1&b=2", nested: { deep: [true] } },
  "caf\u00e9 \u2603 \u{1f600}",
];

describe("the plain scanner agrees with saxes", () => {
  it("reads the calls managers send", () => {
    assert.ok(agrees(encodeMethodCall("status", [])));
    assert.ok(agrees(encodeMethodCall("echo", VALUES)));
    assert.ok(
      agrees(
        encodeMethodCall("ensurepresent", ["a".repeat(40), "http://h/f?x=1&y=2", "user", "pw"]),
      ),
    );
    assert.ok(
      agrees(encodeMethodCall("build", ["1-1", "binarypackage", "b".repeat(40), { x: "c" }, {}])),
    );
    // Python's xmlrpc.client: a declaration and newlines between elements.
    assert.ok(
      agrees(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>status</methodName>\n<params>\n</params>\n</methodCall>\n",
      ),
    );
    assert.ok(agrees(encodeMethodResponse(VALUES), "methodResponse"));
  });

  it("leaves to saxes what is outside its subset, and agrees when it does answer", () => {
    const ok = encodeMethodCall("echo", ["x"]);
    const cases = [
      "<!-- c -->" + ok,
      ok.replace("<params>", "<params><!-- c -->"),
      ok.replace("x", "<![CDATA[x]]>"),
      ok.replace("x", "&#120;"),
      ok.replace("x", "&x;"),
      ok.replace("x", "a & b"),
      ok.replace("x", "a\r\nb"),
      ok.replace("x", "a]]>b"),
      ok.replace("x", "\u0001"),
      ok.replace("x", "\ud800"),
      ok.replace("x", "\ufffe"),
      ok.replace("<value>", '<value a="1">'),
      ok.replace("<value>", "<value >"),
      ok.replace("<value>", "<value\t>"),
      ok.replace("</value>", "</value >"),
      ok.replace("</value>", "</value/>"),
      ok.replace("<value>", "< value>"),
      ok.replace("<params>", "<params/><params>"),
      ok.replace('<?xml version="1.0"?>', '<?xml version="1.1"?>'),
      ok.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-8"?>'),
      ok.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="latin1"?>'),
      ok.replace('<?xml version="1.0"?>', '<?XML version="1.0"?>'),
      ok.replace('<?xml version="1.0"?>', '<?xml version="1.0" standalone="yes"?>'),
      ok.replace('<?xml version="1.0"?>', ' <?xml version="1.0"?>'),
      ok.replace('<?xml version="1.0"?>', ""),
      ok.replace('<?xml version="1.0"?>', "\n\n"),
      ok + "<?pi x?>",
      ok + "garbage",
      ok + "<methodCall/>",
      ok + "  \n",
      ok.replace("</methodCall>", ""),
      ok.replace("<string>x</string>", "<string>x</int>"),
      ok.replace("<string>x</string>", "<string/>"),
      ok.replace("<string>x</string>", "<nil/>"),
      ok.replace("<string>x</string>", "<ex:nil/>"),
      ok.replace("<string>x</string>", "<foo/>"),
      "<methodCall><methodName>a</methodName></methodCall>",
      "<methodCall/>",
      "<methodCall><methodName>a</methodCall></methodName>",
      "<methodCall><methodName>a</methodName>",
      "<>",
      "</>",
      "<methodCall></>",
    ];
    for (const body of cases) agrees(body);
  });

  it("agrees on thousands of mutations of valid documents", () => {
    const docs = [
      encodeMethodCall("status", []),
      encodeMethodCall("echo", VALUES),
      encodeMethodCall("build", ["1-1", "binarypackage", "b".repeat(40), { x: "c" }, {}]),
    ];
    const inserts = [
      "<",
      ">",
      "/",
      "&",
      "&amp;",
      "&lt;",
      " ",
      "\n",
      "\r",
      "!",
      "?",
      "]]>",
      '"',
      "\u0001",
      "\t",
      "\ufffe",
      "\ud800",
      "\udc00",
      "\u00e9",
      "<!",
      "<?",
      "]]",
      "\u0000",
    ];
    // A fixed pseudo-random sequence: the same cases on every run.
    let seed = 1;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let answered = 0;
    for (let i = 0; i < 6000; i++) {
      const doc = docs[i % docs.length]!;
      const at = rand(doc.length + 1);
      let body: string;
      switch (rand(3)) {
        case 0:
          body = doc.slice(0, at) + inserts[rand(inserts.length)]! + doc.slice(at);
          break;
        case 1:
          body = doc.slice(0, at) + doc.slice(Math.min(doc.length, at + 1 + rand(8)));
          break;
        default:
          body = doc.slice(0, at);
      }
      if (agrees(body)) answered++;
    }
    // Mostly so that this test keeps exercising the scanner's acceptance.
    assert.ok(answered > 100, `the scanner answered only ${answered} of the mutations`);
  });

  it("keeps the depth limit", () => {
    const nested = (n: number): string =>
      encodeMethodCall("echo", ["x"]).replace(
        "<value><string>x</string></value>",
        "<value><array><data>".repeat(n - 1) +
          "<value>x</value>" +
          "</data></array></value>".repeat(n - 1),
      );
    assert.ok(agrees(nested(64)));
    assert.equal(scanned(nested(65), "methodCall"), null);
    assert.match(JSON.stringify(saxes(nested(65), "methodCall")), /deeper than 64/);
  });
});
