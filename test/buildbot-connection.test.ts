// The worker's side of the wire, against a bare WebSocket server playing the master: the
// upgrade carries HTTP Basic credentials and offers no subprotocol, frames are binary
// msgpack maps, every request is answered (an unknown op with is_exception), the
// worker's own requests count from 0 on each connection, and a dropped connection kills
// the running command's whole tree and is followed by a new connection.
import assert from "node:assert/strict";
import fs from "node:fs";
import type { IncomingMessage } from "node:http";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { decode, encode } from "@msgpack/msgpack";
import pino from "pino";
import { WebSocketServer, type WebSocket } from "ws";
import { MachineSlots } from "../src/builder/slots.js";
import { startBuildbotWorker } from "../src/buildbot/worker.js";
import { createScrubber } from "../src/log/scrub.js";
import { processRunner } from "../src/process/runner.js";
import { MasterConnection } from "../src/buildbot/connection.js";
import WebSocketClient from "ws";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Msg = Record<string, unknown>;

/** One connection from the worker, as the master sees it. */
class Peer {
  private seq = 0;
  readonly received: Msg[] = [];
  private readonly waiters: { test: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];

  constructor(
    readonly ws: WebSocket,
    readonly req: IncomingMessage,
  ) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      assert.ok(isBinary, "binary frames only");
      const m = decode(data) as Msg;
      this.received.push(m);
      // Answer the worker's requests as a master does.
      if (m.op !== "response") {
        ws.send(encode({ op: "response", seq_number: m.seq_number, result: null }), {
          binary: true,
        });
      }
      for (const w of this.waiters.filter((x) => x.test(m))) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    });
  }

  next(test: (m: Msg) => boolean): Promise<Msg> {
    const seen = this.received.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  /** Send a request; resolves with its response. */
  request(op: string, fields: Msg = {}): Promise<Msg> {
    const seq = this.seq++;
    this.ws.send(encode({ ...fields, op, seq_number: seq }), { binary: true });
    return this.next((m) => m.op === "response" && m.seq_number === seq);
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bb-conn-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function processesWith(text: string): number[] {
  return fs
    .readdirSync("/proc")
    .filter((n) => {
      if (!/^\d+$/.test(n)) return false;
      try {
        return (
          fs.readFileSync(`/proc/${n}/cmdline`, "latin1").includes(text) &&
          !/\) Z /.test(fs.readFileSync(`/proc/${n}/stat`, "latin1"))
        );
      } catch {
        return false;
      }
    })
    .map(Number);
}

test("the wire: auth, answers, seq numbers, and a drop that kills the command", async () => {
  const peers: Peer[] = [];
  const arrived: ((p: Peer) => void)[] = [];
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  server.on("connection", (ws, req) => {
    const p = new Peer(ws, req);
    peers.push(p);
    arrived.shift()?.(p);
  });
  await new Promise((r) => server.once("listening", r));
  const port = (server.address() as { port: number }).port;
  const nextPeer = (): Promise<Peer> => new Promise((r) => arrived.push(r));

  const basedir = path.join(dir, "worker");
  fs.mkdirSync(basedir);
  const first = nextPeer();
  const worker = startBuildbotWorker({
    master: { host: "127.0.0.1", port },
    name: "w1",
    password: "pw-of-w1",
    basedir,
    info: () => ({ admin: "a", host: "h", capabilities: "{}" }),
    runner: processRunner,
    sandbox: null,
    buildUser: null,
    scrubber: createScrubber(["pw-of-w1"]),
    slots: new MachineSlots(1),
    gate: () => ({ env: {}, logLines: [], extraStatus: {}, secrets: [] }),
    sharedCache: null,
    logger: pino({ level: "silent" }),
    reconnect: { minMs: 50, maxMs: 200 },
    version: "9.9",
  });
  try {
    const p = await first;
    const auth = p.req.headers.authorization ?? "";
    assert.equal(Buffer.from(auth.replace(/^Basic /, ""), "base64").toString(), "w1:pw-of-w1");
    assert.equal(p.req.headers["sec-websocket-protocol"], undefined, "no subprotocol offered");

    const info = (await p.request("get_worker_info")).result as Msg;
    assert.equal(info.basedir, basedir);
    assert.equal(info.system, "posix");
    assert.equal(info.delete_leftover_dirs, false);
    assert.equal((info.worker_commands as Msg).uploadFile, "3.1");
    assert.equal((info.environ as Msg).PATH !== undefined, true);
    assert.equal(info.admin, "a");
    await worker.when("connected");
    const set = await p.request("set_worker_settings", {
      args: {
        buffer_size: 65536,
        buffer_timeout: 0.05,
        max_line_length: 4096,
        newline_re: "(\r\n)",
      },
    });
    assert.equal(set.result, null);

    const unknown = await p.request("no_such_op");
    assert.equal(unknown.is_exception, true);
    assert.match(String(unknown.result), /no_such_op does not exist/);

    const mk = await p.request("start_command", {
      command_id: "1",
      command_name: "mkdir",
      args: { paths: [path.join(basedir, "b")] },
    });
    assert.equal(mk.result, null);
    await p.next((m) => m.op === "complete" && m.command_id === "1");
    const rc = p.received.find((m) => m.op === "update" && m.command_id === "1")!;
    assert.deepEqual(
      (rc.args as unknown[][]).find((e) => e[0] === "rc"),
      ["rc", 0],
    );

    const marker = `1000.${process.pid}77`;
    await p.request("start_command", {
      builder_name: "b",
      command_id: "2",
      command_name: "shell",
      args: {
        workdir: path.join(basedir, "b", "build"),
        command: `sleep ${marker} & echo started; wait`,
      },
    });
    await p
      .next(
        (m) =>
          m.op === "update" && JSON.stringify(m.args).includes("started") && m.command_id === "2",
      )
      .catch(() => undefined);
    for (let i = 0; processesWith(marker).length === 0; i++) {
      assert.ok(i < 100, "the command's process did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
    // The worker's requests so far were numbered from 0, one by one.
    const seqs = p.received.filter((m) => m.op !== "response").map((m) => m.seq_number);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i),
    );

    const second = nextPeer();
    p.ws.terminate();
    const p2 = await second;
    for (let i = 0; processesWith(marker).length > 0; i++) {
      assert.ok(i < 100, "the command's tree outlived the connection");
      await new Promise((r) => setTimeout(r, 50));
    }
    for (let i = 0; worker.status().connects < 2; i++) {
      assert.ok(i < 100, "the worker did not count its second connection");
      await new Promise((r) => setTimeout(r, 20));
    }
    // A new connection counts its requests from 0 again.
    await p2.request("start_command", {
      command_id: "3",
      command_name: "listdir",
      args: { path: basedir },
    });
    const upd = await p2.next((m) => m.op === "update");
    assert.equal(upd.seq_number, 0);
  } finally {
    await worker.close();
    server.close();
  }
  assert.equal(worker.status().state, "stopped");
});

test("a master that stops answering pings is dropped after an interval; one that answers is kept", async () => {
  const log = pino({ level: "silent" });
  const connect = async (autoPong: boolean): Promise<{ closed: Promise<string>; stop(): void }> => {
    const server = new WebSocketServer({ port: 0, host: "127.0.0.1", autoPong });
    await new Promise<void>((r) => server.once("listening", () => r()));
    const { port } = server.address() as { port: number };
    const ws = new WebSocketClient(`ws://127.0.0.1:${port}/`);
    await new Promise<void>((r, j) => ws.once("open", () => r()).once("error", j));
    const conn = new MasterConnection(ws, () => null, log, 100);
    return {
      closed: new Promise((resolve) => conn.onClose(resolve)),
      stop() {
        conn.close();
        server.close();
        for (const c of server.clients) c.terminate();
      },
    };
  };
  const silent = await connect(false);
  const why = await Promise.race([silent.closed, sleep(3000).then(() => "still open")]);
  assert.equal(why, "the master did not answer a ping within 0.1 s");
  silent.stop();
  const alive = await connect(true);
  const state = await Promise.race([alive.closed, sleep(600).then(() => "still open")]);
  assert.equal(state, "still open", "a master that answers pings is kept");
  alive.stop();
});
