// Following the build log over /filecache/buildlog: each poll asks only for the bytes
// after the ones already read (a Range request), so following a long log costs what is
// new, not the whole file. The builder serves the log from build() until clean().

import { StringDecoder } from "node:string_decoder";
import { type BuilderClient, readAll } from "./client.js";
import { CliError } from "./errors.js";

export class LogFollower {
  private offset = 0;
  private decoder = new StringDecoder("utf8");
  private bytes: Buffer[] = [];

  constructor(private readonly client: BuilderClient) {}

  /** The log's new text since the last poll ("" when none); null when there is no log. */
  async poll(): Promise<string | null> {
    const res = await this.client.request("GET", "/filecache/buildlog", {
      range: `bytes=${this.offset}-`,
    });
    if (res.status === 404) {
      res.body.resume();
      return null;
    }
    if (res.status === 416) {
      res.body.resume();
      // Nothing past the offset; a shorter log is another build's: start it over.
      const size = Number(/\/(\d+)$/.exec(String(res.headers["content-range"] ?? ""))?.[1]);
      if (Number.isFinite(size) && size < this.offset) this.restart();
      return "";
    }
    if (res.status !== 200 && res.status !== 206) {
      const text = await readAll(res.body);
      throw new CliError(
        `reading the build log failed: HTTP ${res.status} ${text.trim().slice(0, 200)}`,
      );
    }
    this.bytes = [];
    for await (const c of res.body) this.bytes.push(c as Buffer);
    let data = Buffer.concat(this.bytes);
    // A 200 is the whole file (the server ignored or could not apply the range).
    if (res.status === 200) {
      if (data.length < this.offset) this.restart();
      data = data.subarray(this.offset);
    }
    this.offset += data.length;
    return this.decoder.write(data);
  }

  private restart(): void {
    this.offset = 0;
    this.decoder = new StringDecoder("utf8");
  }
}
