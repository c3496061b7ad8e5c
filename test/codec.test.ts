import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as peerSerializer from "xmlrpc/lib/serializer.js";
import PeerDeserializer from "xmlrpc/lib/deserializer.js";
import {
  decodeMethodCall,
  decodeMethodResponse,
  encodeFault,
  encodeMethodCall,
  encodeMethodResponse,
  type XmlRpcStruct,
  type XmlRpcValue,
} from "../src/rpc/codec.js";

const FIXTURES = path.join(import.meta.dirname, "fixtures", "xmlrpc");
const fixture = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name));

const utc = (...parts: [number, number, number, number, number, number]): Date =>
  new Date(Date.UTC(...parts));

/** 2 KiB of coloured compiler output, the kind of log tail status() carries while building. */
function logtail(): Buffer {
  const lines: string[] = [];
  for (let i = 1; lines.join("").length < 2048; i++) {
    const n = String(i).padStart(3, "0");
    lines.push(`\x1b[32m[${n}]\x1b[0m gcc -O2 -c src/file${i}.c -o obj/file${i}.o\n`);
  }
  return Buffer.from(lines.join("")).subarray(0, 2048);
}

const ALL_TYPES: XmlRpcValue[] = [
  "hello",
  "ünïcødé ✓ 🚀",
  "esc \x1b[31mred\x1b[0m\r\n<&> ]]>",
  "",
  0,
  -1,
  2147483647,
  -2147483648,
  2147483648,
  3.5,
  -0.25,
  1e21,
  true,
  false,
  null,
  Buffer.from([0, 1, 2, 253, 254, 255]),
  Buffer.alloc(0),
  utc(1998, 6, 17, 14, 8, 55),
  [],
  {},
  [1, ["two", [3.5, [null]]]],
  { name: "x", nested: { list: [true, "y"], empty: {} } },
];

const callWith = (valueXml: string): string =>
  `<?xml version="1.0"?><methodCall><methodName>echo</methodName><params><param>${valueXml}</param></params></methodCall>`;

const decodeOne = (valueXml: string): XmlRpcValue => {
  const params = decodeMethodCall(callWith(valueXml)).params;
  assert.equal(params.length, 1);
  return params[0]!;
};

const roundTrip = (v: XmlRpcValue): XmlRpcValue => {
  const response = decodeMethodResponse(encodeMethodResponse(v));
  assert.equal(response.kind, "value");
  return response.kind === "value" ? response.value : null;
};

function rejects(body: string | Buffer, message: RegExp, kind: "call" | "response" = "call"): void {
  assert.throws(() => (kind === "call" ? decodeMethodCall(body) : decodeMethodResponse(body)), {
    name: "BuilddError",
    code: "BUILDD_ERR_DESERIALIZE",
    message,
  });
}

function cannotEncode(value: unknown, message: RegExp): void {
  assert.throws(() => encodeMethodResponse(value as XmlRpcValue), {
    name: "BuilddError",
    code: "BUILDD_ERR_SERIALIZE",
    message,
  });
}

/** What the encoder must make of any text: drop what XML 1.0 cannot carry, keep the rest. */
function xmlSafe(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const next = s.charCodeAt(i + 1);
    if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      out += s[i]! + s[i + 1]!;
      i++;
    } else if (
      (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) ||
      (c >= 0xd800 && c <= 0xdfff) ||
      c === 0xfffe ||
      c === 0xffff
    ) {
      out += "\ufffd";
    } else {
      out += s[i]!;
    }
  }
  return out;
}

describe("golden fixtures: encoding", () => {
  it("status() while BUILDING, with a 2 KiB base64 log tail", () => {
    const xml = encodeMethodResponse({
      builder_status: "BuilderStatus.BUILDING",
      build_id: "1-1",
      logtail: logtail(),
    });
    assert.equal(xml, fixture("status-building.response.xml").toString("utf8"));
  });

  it("a call carrying every type", () => {
    assert.equal(
      encodeMethodCall("echo", ALL_TYPES),
      fixture("echo-all-types.call.xml").toString("utf8"),
    );
  });

  it("a call without parameters", () => {
    assert.equal(encodeMethodCall("status", []), fixture("status.call.xml").toString("utf8"));
  });

  it("a fault", () => {
    const xml = encodeFault({
      faultCode: 8002,
      faultString: "Can't deserialize input: two values in one <value> & more",
    });
    assert.equal(xml, fixture("fault.response.xml").toString("utf8"));
  });
});

describe("golden fixtures: decoding", () => {
  it("our own status() BUILDING response", () => {
    assert.deepEqual(decodeMethodResponse(fixture("status-building.response.xml")), {
      kind: "value",
      value: { builder_status: "BuilderStatus.BUILDING", build_id: "1-1", logtail: logtail() },
    });
  });

  it("our own call carrying every type", () => {
    const call = decodeMethodCall(fixture("echo-all-types.call.xml"));
    assert.equal(call.methodName, "echo");
    assert.deepEqual(
      call.params,
      ALL_TYPES.map((v) => (typeof v === "string" ? xmlSafe(v) : v)),
    );
  });

  it("a build() call written by Python's xmlrpc.client", () => {
    assert.deepEqual(decodeMethodCall(fixture("python-build.call.xml")), {
      methodName: "build",
      params: [
        "1-1",
        "binarypackage",
        "a".repeat(40),
        { "hello_2.10-3.dsc": "b".repeat(40) },
        {
          archive_private: false,
          arch_tag: "amd64",
          archives: ["deb http://ftpmaster.internal/ubuntu jammy main"],
          suite: "jammy",
          ogrecomponent: "main",
          build_debug_symbols: false,
          series: "jammy",
          trusted_keys: [Buffer.from([0x99, 0x01, 0x0d, 0x04])],
          fast_cleanup: true,
          image_type: null,
          score: 2.5,
          created: utc(2024, 1, 29, 23, 59, 58),
        },
      ],
    });
  });

  it("a fault written by Python's xmlrpc.client", () => {
    assert.deepEqual(decodeMethodResponse(fixture("python-fault.response.xml")), {
      kind: "fault",
      fault: { faultCode: 8001, faultString: "procedure foo not found" },
    });
  });

  it("a call written by the xmlrpc npm package (CDATA, <string/>, big <int>)", () => {
    assert.deepEqual(decodeMethodCall(fixture("npm-xmlrpc-echo.call.xml")), {
      methodName: "echo",
      params: [
        "a&b<c",
        "plain",
        "",
        7,
        -3.5,
        true,
        false,
        null,
        Buffer.from("hi"),
        [1, "x", []],
        { a: 1, b: { c: "d" } },
        2 ** 40,
      ],
    });
  });

  it("bare values, <i4>, <i8>, time zones, comments, CDATA and loose whitespace", () => {
    const special = JSON.parse('{"__proto__": "just a key"}') as XmlRpcStruct;
    special["constructor"] = "also a key";
    special[""] = [1, "two"];
    assert.deepEqual(decodeMethodCall(fixture("bare-values.call.xml")), {
      methodName: "echo",
      params: [
        "bare text",
        "",
        "",
        "  spaced  ",
        "",
        -42,
        7,
        Number.MAX_SAFE_INTEGER,
        -Number.MAX_SAFE_INTEGER,
        true,
        false,
        -1500,
        0.5,
        utc(1998, 6, 17, 14, 8, 55),
        utc(1998, 6, 17, 14, 8, 55),
        utc(1998, 6, 17, 14, 8, 55),
        utc(1998, 6, 17, 14, 8, 55),
        Buffer.from("hello"),
        Buffer.alloc(0),
        null,
        "<&>\"'©🚀\r",
        "<raw> & ]]> kept",
        "splittext",
        [],
        {},
        special,
      ],
    });
  });

  it("scalar edge cases", () => {
    assert.ok(Object.is(decodeOne("<value><int>-0</int></value>"), 0));
    assert.equal(decodeOne("<value><i4>\n 0042 \n</i4></value>"), 42);
    assert.equal(decodeOne("<value><double>1E+2</double></value>"), 100);
    assert.equal(decodeOne("<value><double>-7.</double></value>"), -7);
    assert.equal(decodeOne("<value><boolean> 1 </boolean></value>"), true);
    assert.equal(decodeOne("<value><string>  </string></value>"), "  ");
    assert.equal(decodeOne("<value>\n  <string>x</string>\n</value>"), "x");
    assert.equal(decodeOne("<value>a\r\nb</value>"), "a\nb", "XML folds a literal CR LF");
    assert.deepEqual(decodeOne("<value><nil></nil></value>"), null);
    assert.deepEqual(
      decodeOne("<value><dateTime.iso8601>20000229T00:00:00.250+0100</dateTime.iso8601></value>"),
      new Date("2000-02-28T23:00:00.250Z"),
    );
    assert.deepEqual(
      decodeOne("<value><dateTime.iso8601>00010101T00:00:00</dateTime.iso8601></value>"),
      new Date("0001-01-01T00:00:00Z"),
    );
    assert.deepEqual(decodeOne("<value><base64>\r\n\tYQ==\n</base64></value>"), Buffer.from("a"));
    const dup = decodeOne(
      "<value><struct><member><name>k</name><value>1</value></member>" +
        "<member><name>k</name><value>2</value></member></struct></value>",
    );
    assert.deepEqual(dup, { k: "2" }, "the last duplicate member wins, as in Python");
  });

  it("a pretty-printed status() WAITING response", () => {
    assert.deepEqual(decodeMethodResponse(fixture("pretty-status.response.xml")), {
      kind: "value",
      value: {
        builder_status: "BuilderStatus.WAITING",
        build_status: "BuildStatus.OK",
        filemap: { "hello_2.10-3_amd64.deb": "0123456789abcdef0123456789abcdef01234567" },
        dependencies: null,
      },
    });
  });
});

describe("round trips", () => {
  it("every type, one at a time and all together", () => {
    for (const v of ALL_TYPES) {
      assert.deepEqual(roundTrip(v), typeof v === "string" ? xmlSafe(v) : v);
    }
    const call = decodeMethodCall(encodeMethodCall("echo", ALL_TYPES));
    assert.equal(call.params.length, ALL_TYPES.length);
  });

  it("numbers: int32 bounds, safe integers beyond them, doubles", () => {
    // prettier-ignore
    const numbers = [
      0, 1, -1, 2147483647, -2147483648, 2147483648, -2147483649, 2 ** 40,
      Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0.1, -0.1, 1e-7, 1.5e300,
      Number.MAX_VALUE, Number.MIN_VALUE, 123456.789,
    ];
    for (const n of numbers) assert.equal(roundTrip(n), n);
    assert.match(encodeMethodResponse(2147483647), /<int>2147483647<\/int>/);
    assert.match(encodeMethodResponse(-2147483648), /<int>-2147483648<\/int>/);
    assert.match(encodeMethodResponse(2147483648), /<double>2147483648<\/double>/);
    assert.match(encodeMethodResponse(1.5), /<double>1.5<\/double>/);
    assert.ok(Object.is(roundTrip(-0), 0), "negative zero is written as <int>0</int>");
  });

  it("dates, to the second, in UTC", () => {
    const dates = [
      utc(1970, 0, 1, 0, 0, 0),
      utc(2024, 1, 29, 23, 59, 59),
      new Date("0001-01-01T00:00:00Z"),
      new Date("9999-12-31T23:59:59Z"),
    ];
    for (const d of dates) assert.deepEqual(roundTrip(d), d);
    assert.match(
      encodeMethodResponse(utc(2001, 8, 9, 1, 2, 3)),
      /<dateTime.iso8601>20010909T01:02:03</,
    );
    assert.deepEqual(
      roundTrip(new Date(Date.UTC(2001, 0, 1, 0, 0, 0, 999))),
      utc(2001, 0, 1, 0, 0, 0),
    );
  });

  it("unicode, astral characters and markup", () => {
    const s = 'Ελληνικά 中文 עברית 🚀👩‍👩‍👧 <tag attr="x"> & &amp; ]]> \t\n';
    assert.equal(roundTrip(s), s);
    assert.deepEqual(roundTrip({ [s]: s }), { [s]: s });
  });

  it("every UTF-16 code unit: invalid ones become U+FFFD, \\r survives", () => {
    const units: string[] = [];
    for (let c = 0; c <= 0xffff; c++) units.push(String.fromCharCode(c));
    const all = units.join(" "); // spaces keep every surrogate alone
    const pairs = "🚀\ud83d\ude80x\ud83dy\ude80";
    assert.equal(roundTrip(all), xmlSafe(all));
    assert.equal(roundTrip(pairs), "🚀🚀x\ufffdy\ufffd");
    assert.equal(roundTrip("a\r\nb\rc"), "a\r\nb\rc");
    assert.match(encodeMethodResponse("\x00\x07\x1b\x7f"), /<string>\ufffd\ufffd\ufffd\x7f</);
  });

  it("empty and deeply nested containers", () => {
    let nested: XmlRpcValue = "core";
    for (let i = 0; i < 60; i++) nested = i % 2 === 0 ? [nested] : { level: nested };
    for (const v of [[], {}, [[]], { a: {} }, [{}, [], ""], nested]) {
      assert.deepEqual(roundTrip(v), v);
    }
  });

  it("a large flat array", () => {
    const big = Array.from({ length: 50_000 }, (_, i) => (i % 2 ? `s${i}` : i));
    assert.deepEqual(roundTrip(big), big);
  });

  it("faults", () => {
    const fault = { faultCode: 8002, faultString: "bad \x1b thing <here>" };
    assert.deepEqual(decodeMethodResponse(encodeFault(fault)), {
      kind: "fault",
      fault: { faultCode: 8002, faultString: "bad \ufffd thing <here>" },
    });
  });

  it("method names and parameters of a call", () => {
    const params: XmlRpcValue[] = ["1-1", { a: [1, 2.5] }, null];
    assert.deepEqual(decodeMethodCall(encodeMethodCall("ensurepresent", params)), {
      methodName: "ensurepresent",
      params,
    });
  });
});

describe("encoding", () => {
  it("starts with the XML declaration and is valid UTF-8", () => {
    const xml = encodeMethodResponse("ü");
    assert.ok(xml.startsWith('<?xml version="1.0"?>\n<methodResponse>'));
    assert.equal(Buffer.from(xml, "utf8").toString("utf8"), xml);
  });

  it("writes undefined as nil, typed arrays as base64, own enumerable keys only", () => {
    const bare = Object.assign(Object.create(null) as XmlRpcStruct, { own: 2 });
    const hidden: XmlRpcStruct = { shown: 1 };
    Object.defineProperty(hidden, "hidden", { value: 2, enumerable: false });
    assert.deepEqual(roundTrip([undefined as unknown as XmlRpcValue]), [null]);
    assert.deepEqual(roundTrip({ a: undefined as unknown as XmlRpcValue }), { a: null });
    assert.deepEqual(roundTrip(new Uint8Array([1, 2, 3]) as Buffer), Buffer.from([1, 2, 3]));
    assert.deepEqual(roundTrip(bare), { own: 2 });
    assert.deepEqual(roundTrip(hidden), { shown: 1 });
  });

  it("refuses values XML-RPC cannot carry, naming where they are", () => {
    cannotEncode(NaN, /cannot encode the number NaN at result/);
    cannotEncode(Infinity, /cannot encode the number Infinity/);
    cannotEncode({ a: [1, -Infinity] }, /the number -Infinity at result\.a\[1\]/);
    cannotEncode(() => 1, /cannot encode a function/);
    cannotEncode(Symbol("s"), /cannot encode a symbol/);
    cannotEncode(10n, /cannot encode a bigint/);
    cannotEncode(new Map(), /an object of class Map/);
    cannotEncode(Object.create({ inherited: 1 }), /an object with a custom prototype/);
    cannotEncode(new Date(NaN), /an invalid Date/);
    cannotEncode(new Date("+010000-01-01T00:00:00Z"), /a Date in year 10000/);
    const cyclic: XmlRpcStruct = {};
    cyclic["self"] = cyclic;
    cannotEncode(cyclic, /a cyclic structure at result\.self/);
    assert.throws(() => encodeMethodCall("echo", [1, { f: (() => 1) as unknown as string }]), {
      code: "BUILDD_ERR_SERIALIZE",
      message: /cannot encode a function at param 1\.f/,
    });
    assert.throws(() => encodeMethodCall("", []), { code: "BUILDD_ERR_SERIALIZE" });
    assert.throws(() => encodeFault({ faultCode: 1.5, faultString: "x" }), {
      code: "BUILDD_ERR_SERIALIZE",
    });
  });

  it("writes a shared (acyclic) object twice", () => {
    const shared = { x: 1 };
    assert.deepEqual(roundTrip([shared, shared]), [{ x: 1 }, { x: 1 }]);
  });
});

describe("malformed input", () => {
  it("DOCTYPE with an external entity (XXE)", () => {
    rejects(
      '<?xml version="1.0"?><!DOCTYPE methodCall [<!ENTITY x SYSTEM "file:///etc/passwd">]>' +
        "<methodCall><methodName>&x;</methodName></methodCall>",
      /DOCTYPE declarations are not allowed/,
    );
  });

  it("billion laughs", () => {
    const entities = ['<!ENTITY lol "lol">'];
    for (let i = 1; i <= 9; i++) {
      const prev = i === 1 ? "lol" : `lol${i - 1}`;
      entities.push(`<!ENTITY lol${i} "${`&${prev};`.repeat(10)}">`);
    }
    rejects(
      `<?xml version="1.0"?><!DOCTYPE lolz [${entities.join("")}]>` +
        callWith("<value>&lol9;</value>").replace('<?xml version="1.0"?>', ""),
      /DOCTYPE/,
    );
  });

  it("undefined and malformed entity references", () => {
    rejects(callWith("<value>&x;</value>"), /malformed XML: undefined entity/);
    rejects(callWith("<value>&#0;</value>"), /malformed XML: malformed character entity/);
    rejects(callWith("<value>a & b</value>"), /malformed XML/);
  });

  it("100,000 nested arrays fail fast on depth", () => {
    const body =
      "<methodCall><methodName>a</methodName><params><param>" +
      "<value><array><data>".repeat(100_000) +
      "</data></array></value>".repeat(100_000) +
      "</param></params></methodCall>";
    const start = performance.now();
    rejects(body, /values nested deeper than 64 levels/);
    assert.ok(performance.now() - start < 500, "the depth check must not wait for the end");
  });

  it("a custom depth limit", () => {
    const nested = (n: number): string =>
      "<value><array><data>".repeat(n - 1) +
      "<value>x</value>" +
      "</data></array></value>".repeat(n - 1);
    assert.deepEqual(decodeMethodCall(callWith(nested(3)), { maxDepth: 3 }).params, [[["x"]]]);
    assert.throws(() => decodeMethodCall(callWith(nested(4)), { maxDepth: 3 }), {
      code: "BUILDD_ERR_DESERIALIZE",
      message: /deeper than 3 levels/,
    });
  });

  it("mismatched, unclosed and stray tags", () => {
    rejects(
      "<methodCall><methodName>a</methodCall></methodName>",
      /malformed XML: mismatched tags: <methodName> is closed by another tag/,
    );
    rejects(callWith("<value><int>x</value>"), /<int> is closed by another tag/);
    rejects(callWith("<value><struct></array></value>"), /<struct> is closed by another tag/);
    rejects("<methodCall><methodName>a</methodName>", /unclosed tag: methodCall/);
    rejects(callWith("<value><int>1</i4></value>"), /<int> is closed by another tag/);
    rejects(callWith("<value>1</value></value>"), /<param> is closed by another tag/);
  });

  it("trailing garbage after the root", () => {
    const ok = encodeMethodCall("status", []);
    rejects(ok + "garbage", /text data outside of root node/);
    rejects(ok + "<methodCall/>", /malformed XML/);
    rejects(encodeMethodResponse(1) + "<x/>", /malformed XML/, "response");
  });

  it("two values where one belongs", () => {
    rejects(callWith("<value><int>1</int><int>2</int></value>"), /two values in one <value>/);
    rejects(callWith("<value><int>1</int></value><value>2</value>"), /two values in one <param>/);
    rejects(callWith("<value>text<int>1</int></value>"), /text next to <int> in one <value>/);
    rejects(callWith("<value><int>1</int>text</value>"), /text next to an element/);
  });

  it("invalid base64", () => {
    rejects(callWith("<value><base64>!!!!</base64></value>"), /invalid <base64> value/);
    rejects(callWith("<value><base64>aGVsbG8</base64></value>"), /invalid <base64> value/);
    rejects(callWith("<value><base64>a===</base64></value>"), /invalid <base64> value/);
    rejects(callWith("<value><base64>aG=s</base64></value>"), /invalid <base64> value/);
    rejects(callWith("<value><base64>aGVs_G8=</base64></value>"), /invalid <base64> value/);
  });

  it("invalid integers", () => {
    rejects(callWith("<value><int>12a</int></value>"), /invalid <int> value "12a"/);
    rejects(callWith("<value><int>1.5</int></value>"), /invalid <int> value "1.5"/);
    rejects(callWith("<value><i4></i4></value>"), /invalid <i4> value ""/);
    rejects(callWith("<value><i4>0x10</i4></value>"), /invalid <i4> value "0x10"/);
    rejects(callWith("<value><int>1 2</int></value>"), /invalid <int> value/);
  });

  it("integers out of range", () => {
    rejects(
      callWith("<value><i8>9223372036854775807</i8></value>"),
      /<i8> value "9223372036854775807" is out of range/,
    );
    rejects(callWith("<value><i8>9007199254740992</i8></value>"), /out of range/);
    rejects(callWith("<value><int>-9007199254740992</int></value>"), /out of range/);
  });

  it("invalid booleans", () => {
    rejects(
      callWith("<value><boolean>2</boolean></value>"),
      /invalid <boolean> value "2" \(must be 0 or 1\)/,
    );
    rejects(callWith("<value><boolean>true</boolean></value>"), /invalid <boolean> value "true"/);
    rejects(callWith("<value><boolean></boolean></value>"), /invalid <boolean> value ""/);
  });

  it("invalid doubles", () => {
    for (const bad of ["1.2.3", "NaN", "inf", "-Infinity", "1e", "0x1p3", "", "1,5"]) {
      rejects(callWith(`<value><double>${bad}</double></value>`), /invalid <double> value/);
    }
    rejects(
      callWith("<value><double>1e400</double></value>"),
      /<double> value "1e400" is out of range/,
    );
  });

  it("invalid dates", () => {
    // prettier-ignore
    const dates = [
      "1998-13-01T00:00:00", "19980230T00:00:00", "19990229T00:00:00", "1998-0717T14:08:55",
      "19980717T14:0855", "19980717T24:00:00", "19980717T14:08:60", "19980717", "yesterday",
      "19980717T14:08:55+25:00", "19980717 14:08:55", "19980717T14:08:55.",
    ];
    for (const bad of dates) {
      rejects(
        callWith(`<value><dateTime.iso8601>${bad}</dateTime.iso8601></value>`),
        /invalid <dateTime.iso8601> value/,
      );
    }
  });

  it("a missing or empty methodName", () => {
    rejects("<methodCall><params/></methodCall>", /<methodCall> must start with <methodName>/);
    rejects("<methodCall/>", /<methodCall> without <methodName>/);
    rejects("<methodCall><methodName></methodName></methodCall>", /empty <methodName>/);
    rejects("<methodCall><methodName> </methodName></methodCall>", /empty <methodName>/);
    rejects(
      "<methodCall><methodName>a</methodName><methodName>b</methodName></methodCall>",
      /unexpected <methodName>/,
    );
  });

  it("bytes that are not UTF-8, and other encodings", () => {
    rejects(Buffer.from([0x3c, 0xff]), /body is not valid UTF-8/);
    rejects(Buffer.from(callWith("<value>caf\xe9</value>"), "latin1"), /not valid UTF-8/);
    rejects(
      '<?xml version="1.0" encoding="ISO-8859-1"?><methodCall><methodName>a</methodName></methodCall>',
      /encoding "ISO-8859-1"; only UTF-8 is accepted/,
    );
    rejects(
      '<?xml version="1.1"?><methodCall><methodName>a</methodName></methodCall>',
      /XML version "1.1" is not supported/,
    );
    const bom = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from(encodeMethodCall("a", [])),
    ]);
    assert.equal(decodeMethodCall(bom).methodName, "a");
    assert.equal(
      decodeMethodCall(
        Buffer.from(
          '<?xml version="1.0" encoding="us-ascii"?><methodCall><methodName>a</methodName></methodCall>',
        ),
      ).methodName,
      "a",
    );
  });

  it("an empty body", () => {
    rejects("", /empty body/);
    rejects(Buffer.alloc(0), /empty body/);
    rejects(" \r\n\t", /empty body/);
    rejects("", /empty body/, "response");
  });

  it("unknown elements, attributes and processing instructions", () => {
    rejects(callWith("<value><foo/></value>"), /unknown element <foo>/);
    rejects(callWith("<value><ex:nil/></value>"), /unknown element <ex:nil>/);
    rejects(callWith('<value type="int">1</value>'), /unexpected attribute type on <value>/);
    rejects(
      callWith("<value><?php evil() ?>x</value>"),
      /processing instruction <\?php\?> is not allowed/,
    );
    rejects(
      "<methodCall><methodName>a</methodName><name>b</name></methodCall>",
      /unexpected <name> inside <methodCall>/,
    );
  });

  // prettier-ignore
  it("misplaced structure", () => {
    rejects("<methodCall><methodName>a</methodName><params><value>1</value></params></methodCall>", /unexpected <value> inside <params>/);
    rejects("<methodCall><methodName>a</methodName><params>junk<param/></params></methodCall>", /unexpected text "junk" inside <params>/);
    rejects("<methodCall><methodName>a</methodName><params><param/></params></methodCall>", /<param> without <value>/);
    rejects("<methodCall><methodName>a</methodName><params/><params/></methodCall>", /unexpected <params>/);
    rejects(callWith("<value><struct><member><value>1</value></member></struct></value>"), /<member> must hold one <name> followed by one <value>, got <value>/);
    rejects(callWith("<value><struct><member><name>a</name></member></struct></value>"), /<member> "a" without <value>/);
    rejects(callWith("<value><struct><member></member></struct></value>"), /<member> without <name>/);
    rejects(callWith("<value><struct><member><name>a</name><value/><value/></member></struct></value>"), /<member> must hold one <name>/);
    rejects(callWith("<value><struct><value>1</value></struct></value>"), /unexpected <value> inside <struct>/);
    rejects(callWith("<value><array></array></value>"), /<array> without <data>/);
    rejects(callWith("<value><array><data/><data/></array></value>"), /unexpected <data> inside <array>/);
    rejects(callWith("<value><array><value>1</value></array></value>"), /unexpected <value> inside <array>/);
    rejects(callWith("<value><nil>x</nil></value>"), /<nil> must be empty/);
    rejects(callWith("<value><string><int>1</int></string></value>"), /unexpected <int> inside <string>/);
    rejects(callWith("<value><name>x</name></value>"), /unexpected <name> inside <value>/);
    rejects("<methodResponse/>", /expected <methodCall> as the root element, got <methodResponse>/);
  });

  // prettier-ignore
  it("malformed responses and faults", () => {
    const response = (inner: string): string => `<methodResponse>${inner}</methodResponse>`;
    rejects(response(""), /exactly one <param>/, "response");
    rejects(response("<params/>"), /exactly one <param>/, "response");
    rejects(response("<params><param><value/></param><param><value/></param></params>"), /exactly one <param>/, "response");
    rejects(response("<params><param><value/></param></params><fault/>"), /must hold one <params> or <fault>/, "response");
    rejects(response("<fault><value>oops</value></fault>"), /<fault> does not hold a struct/, "response");
    rejects(response("<fault><value><struct/></value></fault>"), /no integer faultCode/, "response");
    rejects(response("<fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member></struct></value></fault>"), /no string faultString/, "response");
    rejects(encodeMethodCall("a", []), /expected <methodResponse>/, "response");
  });
});

describe("prototype safety", () => {
  const hostile = callWith(
    "<value><struct>" +
      "<member><name>__proto__</name><value><struct><member><name>polluted</name><value>yes</value></member></struct></value></member>" +
      "<member><name>constructor</name><value><struct><member><name>prototype</name><value><struct><member><name>polluted</name><value>yes</value></member></struct></value></member></struct></value></member>" +
      "<member><name>prototype</name><value>p</value></member>" +
      "</struct></value>",
  );

  it("keeps __proto__, constructor and prototype as plain own keys", () => {
    const struct = decodeMethodCall(hostile).params[0] as XmlRpcStruct;
    assert.equal(Object.getPrototypeOf(struct), Object.prototype);
    assert.deepEqual(Object.keys(struct), ["__proto__", "constructor", "prototype"]);
    assert.ok(Object.hasOwn(struct, "__proto__"));
    assert.deepEqual(Object.getOwnPropertyDescriptor(struct, "__proto__")?.value, {
      polluted: "yes",
    });
    assert.equal(
      JSON.stringify(struct),
      '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"prototype":"p"}',
    );
    assert.equal((struct as Record<string, unknown>)["polluted"], undefined);
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
  });

  it("re-encodes such keys as members", () => {
    const struct = decodeMethodCall(hostile).params[0]!;
    const again = roundTrip(struct);
    assert.equal(JSON.stringify(again), JSON.stringify(struct));
    assert.match(encodeMethodResponse(struct), /<name>__proto__<\/name>/);
  });
});

describe("interop with the xmlrpc npm package", () => {
  const serializeMethodCall = peerSerializer.serializeMethodCall as (
    method: string,
    params: readonly unknown[],
  ) => string;
  type Callback = (err: Error | null, value?: unknown) => void;
  const Deserializer = PeerDeserializer as new () => {
    deserializeMethodResponse(stream: Readable, callback: Callback): void;
  };
  const peerReads = (xml: string): Promise<unknown> =>
    new Promise((resolve, reject) => {
      new Deserializer().deserializeMethodResponse(Readable.from([xml]), (err, value) =>
        err ? reject(err) : resolve(value),
      );
    });

  it("decodes calls the peer serializes", () => {
    // The peer writes dates in local time with no zone; we read zone-less times as UTC.
    const local = new Date(2020, 4, 6, 7, 8, 9);
    const asUtc = utc(2020, 4, 6, 7, 8, 9);
    // prettier-ignore
    const params = [
      "tab\tand <markup> & ]]> too", "ünï 🚀", "", 42, -7, 2.25, true, false, null,
      Buffer.from([0, 255, 128]), [1, ["x", []]], { a: { b: [null, "c"] }, "": 0 },
    ];
    const call = decodeMethodCall(serializeMethodCall("build", [...params, local]));
    assert.deepEqual(call, { methodName: "build", params: [...params, asUtc] });
  });

  it("the peer decodes responses we encode", async () => {
    const value = {
      builder_status: "BuilderStatus.BUILDING",
      logtail: logtail(),
      markup: "<b>&amp;</b> ]]>",
      unicode: "ünï 🚀",
      numbers: [0, -2147483648, 2147483647, 2.5, 2 ** 40],
      flags: [true, false],
      nothing: null,
      empty: { list: [], struct: {}, string: "" },
      when: utc(1998, 6, 17, 14, 8, 55),
    };
    const got = (await peerReads(encodeMethodResponse(value))) as Record<string, unknown>;
    // The peer reads zone-less times as local time, the mirror image of its writer.
    assert.deepEqual(got, { ...value, when: new Date(1998, 6, 17, 14, 8, 55) });
  });

  it("the peer decodes our faults", async () => {
    await assert.rejects(
      peerReads(encodeFault({ faultCode: 8001, faultString: "no <such> thing" })),
      {
        faultCode: 8001,
        faultString: "no <such> thing",
      },
    );
  });
});

describe("interop with Python's xmlrpc.client", () => {
  let python: string | undefined;
  try {
    execFileSync("python3", ["-c", "import xmlrpc.client"]);
    python = "python3";
  } catch {
    python = undefined;
  }
  const skip = python === undefined ? "python3 with xmlrpc.client is not available" : false;
  const runPython = (script: string, input?: string): string =>
    execFileSync(python!, ["-c", script], {
      input,
      encoding: "utf8",
      env: { ...process.env, PYTHONIOENCODING: "utf-8" },
    });

  it("decodes a call Python dumps", { skip }, () => {
    const xml = runPython(`
import sys, datetime, xmlrpc.client
params = ("ünï 🚀 <&>", "", 42, -2147483648, 2147483647, True, False, 0.1, -1e100, None,
          xmlrpc.client.Binary(bytes(range(256))), datetime.datetime(1998, 7, 17, 14, 8, 55),
          [1, ["two", []]], {"a": {"b": [None]}, "": "empty key"}, {})
sys.stdout.write(xmlrpc.client.dumps(params, methodname="x", allow_none=True))
`);
    // prettier-ignore
    assert.deepEqual(decodeMethodCall(Buffer.from(xml, "utf8")), {
      methodName: "x",
      params: [
        "ünï 🚀 <&>", "", 42, -2147483648, 2147483647, true, false, 0.1, -1e100, null,
        Buffer.from(Array.from({ length: 256 }, (_, i) => i)), utc(1998, 6, 17, 14, 8, 55),
        [1, ["two", []]], { a: { b: [null] }, "": "empty key" }, {},
      ],
    });
  });

  const LOADS = `
import sys, json, base64, datetime, xmlrpc.client
def conv(v):
    if isinstance(v, bool) or v is None or isinstance(v, str): return v
    if isinstance(v, int): return {"int": v}
    if isinstance(v, float): return {"double": v}
    if isinstance(v, bytes): return {"base64": base64.b64encode(v).decode()}
    if isinstance(v, datetime.datetime): return {"datetime": v.isoformat()}
    if isinstance(v, list): return [conv(x) for x in v]
    if isinstance(v, dict): return {k: conv(x) for k, x in v.items()}
    raise TypeError(type(v))
try:
    params, method = xmlrpc.client.loads(sys.stdin.buffer.read(), use_builtin_types=True)
    print(json.dumps({"method": method, "params": conv(list(params))}))
except xmlrpc.client.Fault as f:
    print(json.dumps({"fault": [f.faultCode, f.faultString]}))
`;
  const pythonLoads = (xml: string): unknown => JSON.parse(runPython(LOADS, xml));

  it("Python loads a response we encode", { skip }, () => {
    const value = {
      status: "BuilderStatus.BUILDING",
      logtail: logtail(),
      text: "ünï 🚀 <&> ]]> \x1b[0m\r\n",
      numbers: [0, -1, 2147483647, 2147483648, 0.5, -1e-7],
      flags: [true, false],
      nothing: null,
      when: utc(2024, 1, 29, 23, 59, 58),
      empty: { list: [], struct: {}, string: "" },
      "__proto__ ": "odd key",
    };
    // prettier-ignore
    assert.deepEqual(pythonLoads(encodeMethodResponse(value)), {
      method: null,
      params: [
        {
          status: "BuilderStatus.BUILDING",
          logtail: { base64: logtail().toString("base64") },
          text: "ünï 🚀 <&> ]]> \ufffd[0m\r\n",
          numbers: [
            { int: 0 }, { int: -1 }, { int: 2147483647 }, { double: 2147483648 },
            { double: 0.5 }, { double: -1e-7 },
          ],
          flags: [true, false],
          nothing: null,
          when: { datetime: "2024-02-29T23:59:58" },
          empty: { list: [], struct: {}, string: "" },
          "__proto__ ": "odd key",
        },
      ],
    });
  });

  it("Python loads a call and a fault we encode", { skip }, () => {
    assert.deepEqual(pythonLoads(encodeMethodCall("ensurepresent", ["a".repeat(40), null])), {
      method: "ensurepresent",
      params: ["a".repeat(40), null],
    });
    assert.deepEqual(pythonLoads(encodeFault({ faultCode: 8002, faultString: "x\x00y & <z>" })), {
      fault: [8002, "x\ufffdy & <z>"],
    });
  });

  it("Python's strict parser accepts every code unit we write", { skip }, () => {
    const units: string[] = [];
    for (let c = 0; c <= 0xffff; c++) units.push(String.fromCharCode(c));
    const all = units.join(" ");
    assert.deepEqual(pythonLoads(encodeMethodResponse(all)), {
      method: null,
      params: [xmlSafe(all)],
    });
  });
});
