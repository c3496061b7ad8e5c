// Read part of a build log by byte offset, for following it (the page, `buildd logs
// --follow`): a bounded read from an offset, cut back to a whole UTF-8 character so the
// next read starts where this one's text ended. Reading costs the same at any offset of
// any size of log.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export interface LogRange {
  readonly offset: number;
  /** Where the next read should start. */
  readonly nextOffset: number;
  /** The file's size when read. */
  readonly size: number;
  readonly text: string;
}

/** How many bytes at the end of `buf` begin a UTF-8 character that is not complete. */
function incompleteTail(buf: Buffer): number {
  // A character is at most 4 bytes: look back at most 3 for its lead byte.
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const b = buf[buf.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: keep looking for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/** Up to `max` bytes of `file` from `offset`; null when the file does not exist. */
export function readLogRange(file: string, offset: number, max: number): LogRange | null {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.min(offset, size);
    const buf = Buffer.alloc(Math.min(max, size - start));
    const n = buf.length > 0 ? readSync(fd, buf, 0, buf.length, start) : 0;
    let bytes = buf.subarray(0, n);
    // Cut an unfinished character, unless it is all there is: then it is shown as U+FFFD
    // rather than a follower never getting past it (the log's writes are whole lines,
    // so this is a broken byte sequence in the output, not a write in progress).
    const cut = incompleteTail(bytes);
    if (cut > 0 && cut < bytes.length) bytes = bytes.subarray(0, bytes.length - cut);
    return { offset: start, nextOffset: start + bytes.length, size, text: bytes.toString("utf8") };
  } finally {
    closeSync(fd);
  }
}
