// HTTPS with a certificate the test makes (openssl): Python's xmlrpc.client and curl
// verify it against the test's CA; /filecache serves ranges over it; SIGHUP swaps in a
// renewed certificate while a build runs, and the build finishes. And from a client on
// another host (a network namespace the test creates), a builder listening on the
// network refuses calls without credentials and answers them with.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { makeBuilderDirs, startBuilderProcess, type BuilderProcess } from "../harness/builder.js";
import { makeTarball, sha1 } from "../harness/fixtures.js";
import { suiteLibrarian } from "../harness/suite.js";

const run = promisify(execFile);

interface Pki {
  dir: string;
  ca: string;
  /** Make a certificate for `ip` signed by the CA; returns [cert, key] paths. */
  issue(name: string, ip: string): [string, string];
}

function makePki(): Pki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-tls-"));
  const ca = path.join(dir, "ca.pem");
  const caKey = path.join(dir, "ca.key");
  const openssl = (...args: string[]): void =>
    void execFileSync("openssl", args, { stdio: "pipe" });
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    ca,
    "-days",
    "2",
    "-subj",
    "/CN=buildd test CA",
  );
  return {
    dir,
    ca,
    issue(name, ip) {
      const key = path.join(dir, `${name}.key`);
      const csr = path.join(dir, `${name}.csr`);
      const cert = path.join(dir, `${name}.pem`);
      const ext = path.join(dir, `${name}.ext`);
      fs.writeFileSync(ext, `subjectAltName=IP:${ip}\n`);
      openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        `/CN=${name}`,
      );
      openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        caKey,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "2",
        "-extfile",
        ext,
      );
      fs.chmodSync(key, 0o600);
      return [cert, key];
    },
  };
}

/** SHA-256 fingerprint of the certificate a new TLS connection is served. */
function servedFingerprint(port: number, host: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, ca: fs.readFileSync(ca) }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on("error", reject);
  });
}

function fingerprintOf(certFile: string): string {
  return new crypto.X509Certificate(fs.readFileSync(certFile)).fingerprint256;
}

const PY_STATUS = `
import ssl, sys, xmlrpc.client
ctx = ssl.create_default_context(cafile=sys.argv[2])
proxy = xmlrpc.client.ServerProxy(sys.argv[1] + "/rpc", context=ctx)
print(proxy.status()["builder_status"])
print(proxy.echo("over TLS")[0])
`;

describe("TLS", () => {
  const lib = suiteLibrarian();
  let pki: Pki;
  let p: BuilderProcess;
  let cert: string;
  let key: string;

  before(async () => {
    pki = makePki();
    [cert, key] = pki.issue("first", "127.0.0.1");
    const dirs = makeBuilderDirs({ tls: { cert, key } });
    p = await startBuilderProcess(dirs, { tlsCa: fs.readFileSync(pki.ca) });
  });
  after(async () => {
    await p?.kill("SIGTERM");
    fs.rmSync(pki.dir, { recursive: true, force: true });
  });

  test("Python's xmlrpc.client verifies the certificate against the CA and calls over HTTPS", async () => {
    assert.match(p.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const { stdout } = await run("python3", ["-c", PY_STATUS, p.url, pki.ca]);
    assert.equal(stdout, "BuilderStatus.IDLE\nover TLS\n");
    // And a client that does not trust the CA is refused by its own TLS check.
    await assert.rejects(run("curl", ["-sS", "--fail", `${p.url}/healthz`]), /certificate/);
  });

  test("/filecache over HTTPS with byte ranges, verified by curl", async () => {
    const body = Buffer.from("0123456789abcdef, served over TLS");
    const sum = sha1(body);
    const url = lib().add("/tls-file", body);
    const { stdout } = await run("python3", [
      "-c",
      `
import ssl, sys, xmlrpc.client
ctx = ssl.create_default_context(cafile=sys.argv[2])
print(xmlrpc.client.ServerProxy(sys.argv[1] + "/rpc", context=ctx).ensurepresent(sys.argv[3], sys.argv[4], "", ""))
`,
      p.url,
      pki.ca,
      sum,
      url,
    ]);
    assert.equal(stdout.trim(), "[True, 'Download']");
    const range = await run("curl", [
      "-sS",
      "--fail",
      "--cacert",
      pki.ca,
      "-r",
      "4-9",
      `${p.url}/filecache/${sum}`,
    ]);
    assert.equal(range.stdout, "456789");
    const head = await run("curl", [
      "-sS",
      "--fail",
      "--cacert",
      pki.ca,
      "-D",
      "-",
      "-o",
      "/dev/null",
      "-r",
      "0-1",
      `${p.url}/filecache/${sum}`,
    ]);
    assert.match(head.stdout, /^HTTP\/1\.1 206/);
    assert.match(head.stdout, new RegExp(`content-range: bytes 0-1/${body.length}`, "i"));
  });

  test("SIGHUP serves a renewed certificate while a build runs, and the build finishes", async () => {
    const port = Number(new URL(p.url).port);
    assert.equal(await servedFingerprint(port, "127.0.0.1", pki.ca), fingerprintOf(cert));
    const tree = makeTarball({ "x.txt": "x\n" });
    const treeUrl = lib().add("/tls-tree", tree);
    // The harness client speaks plain fetch(); over TLS use Python for the calls.
    const call = (code: string) =>
      run("python3", [
        "-c",
        `
import ssl, sys, xmlrpc.client
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = xmlrpc.client.ServerProxy(sys.argv[1] + "/rpc", context=ctx)
${code}
`,
        p.url,
        pki.ca,
        sha1(tree),
        treeUrl,
      ]);
    await call(`print(s.ensurepresent(sys.argv[3], sys.argv[4], "", ""))`);
    await call(
      `print(s.build("TLS-1", "script", sys.argv[3], {}, {"steps": [{"name": "wait", "run": "sleep 2; echo done > out.txt"}], "artifacts": ["out.txt"]}))`,
    );

    // Renew: a new key and certificate in the same files, then SIGHUP.
    const [renewed, renewedKey] = pki.issue("renewed", "127.0.0.1");
    fs.copyFileSync(renewed, cert);
    fs.copyFileSync(renewedKey, key);
    p.child.kill("SIGHUP");
    await waitUntil(
      async () => (await servedFingerprint(port, "127.0.0.1", pki.ca)) === fingerprintOf(renewed),
    );
    // The log line is written after the new context is in use: it may arrive a moment
    // after the first connection that sees the new certificate.
    await waitUntil(async () => /reloaded the TLS certificate and key/.test(p.logText()));

    const { stdout } = await call(`
import time
for _ in range(300):
    st = s.status()
    if st["builder_status"] == "BuilderStatus.WAITING":
        break
    time.sleep(0.1)
print(st["build_status"], sorted(st.get("filemap", {})))
print(s.clean())
`);
    assert.equal(stdout, "BuildStatus.OK ['out.txt']\nBuilderStatus.IDLE\n");
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("a builder on a network, reached from another host", () => {
  const ns = `buildd-t${process.pid % 100000}`;
  const hostIp = `10.${(process.pid % 200) + 20}.0.1`;
  const peerIp = hostIp.replace(/\.1$/, ".2");
  let pki: Pki;
  let p: BuilderProcess;

  before(async () => {
    const ip = (...args: string[]): void => void execFileSync("ip", args, { stdio: "pipe" });
    ip("netns", "add", ns);
    ip("link", "add", `${ns}-h`, "type", "veth", "peer", "name", `${ns}-p`);
    ip("link", "set", `${ns}-p`, "netns", ns);
    ip("addr", "add", `${hostIp}/24`, "dev", `${ns}-h`);
    ip("link", "set", `${ns}-h`, "up");
    ip("netns", "exec", ns, "ip", "addr", "add", `${peerIp}/24`, "dev", `${ns}-p`);
    ip("netns", "exec", ns, "ip", "link", "set", `${ns}-p`, "up");
    ip("netns", "exec", ns, "ip", "link", "set", "lo", "up");
    pki = makePki();
    const [cert, key] = pki.issue("net", hostIp);
    const dirs = makeBuilderDirs({
      builder: { bindhost: hostIp },
      tls: { cert, key },
      auth: { password: "net-pw-7f3a" },
    });
    p = await startBuilderProcess(dirs, { tlsCa: fs.readFileSync(pki.ca) });
  });
  after(async () => {
    await p?.kill("SIGTERM");
    execFileSync("ip", ["link", "del", `${ns}-h`], { stdio: "ignore" });
    execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    fs.rmSync(pki.dir, { recursive: true, force: true });
  });

  const curlFromPeer = (...args: string[]) =>
    run("ip", [
      "netns",
      "exec",
      ns,
      "curl",
      "-sS",
      "--cacert",
      pki.ca,
      "-o",
      "-",
      "-w",
      "\n%{http_code}",
      ...args,
    ]);
  const statusCall =
    '<?xml version="1.0"?><methodCall><methodName>status</methodName><params/></methodCall>';

  test("without credentials: 401; with them: the call is answered", async () => {
    const url = `https://${hostIp}:${new URL(p.url).port}/rpc`;
    const refused = await curlFromPeer("-d", statusCall, url);
    assert.match(refused.stdout, /\n401$/);
    const served = await curlFromPeer("-u", "buildd:net-pw-7f3a", "-d", statusCall, url);
    assert.match(served.stdout, /BuilderStatus\.IDLE[\s\S]*\n200$/);
    assert.doesNotMatch(p.logText(), /net-pw-7f3a/);
  });
});
