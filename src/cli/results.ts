// Bringing a finished build's files home: each filemap entry is fetched from
// /filecache/<sha1> into the output directory while it is hashed, and only a file whose
// SHA-1 is the one status() named is renamed into place; a mismatch leaves nothing.

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import { isSafeRelativeName } from "../protocol/names.js";
import { type BuilderClient, readAll } from "./client.js";
import { CliError } from "./errors.js";

export interface Fetched {
  readonly name: string;
  readonly file: string;
  readonly size: number;
  readonly sha1: string;
}

async function fetchOne(
  client: BuilderClient,
  dir: string,
  name: string,
  sha1: string,
): Promise<Fetched> {
  if (!isSafeRelativeName(name)) {
    throw new CliError(
      `the builder named a result ${JSON.stringify(name)}, which is not a safe relative path; not fetching it`,
    );
  }
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const res = await client.request("GET", `/filecache/${sha1}`);
  if (res.status !== 200) {
    const text = await readAll(res.body);
    throw new CliError(
      `fetching ${name} (/filecache/${sha1}) failed: HTTP ${res.status} ${text.trim().slice(0, 200)}`,
    );
  }
  const part = `${file}.part`;
  const hash = createHash("sha1");
  let size = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    await pipeline(res.body, hashing, fs.createWriteStream(part));
    const got = hash.digest("hex");
    if (got !== sha1) {
      throw new CliError(
        `${name}: the builder served content with SHA-1 ${got}, but status() named ${sha1}; not kept`,
      );
    }
    fs.renameSync(part, file);
  } finally {
    fs.rmSync(part, { force: true });
  }
  return { name, file, size, sha1 };
}

/** Fetch and verify every file of a filemap into `dir`, one after the other. */
export async function fetchResults(
  client: BuilderClient,
  dir: string,
  filemap: Readonly<Record<string, string>>,
  onFetched: (f: Fetched) => void,
): Promise<Fetched[]> {
  const out: Fetched[] = [];
  for (const [name, sha1] of Object.entries(filemap)) {
    const f = await fetchOne(client, dir, name, sha1);
    onFetched(f);
    out.push(f);
  }
  return out;
}
