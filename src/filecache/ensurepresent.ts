// ensurepresent(sha1, url, username, password): make sure the cache holds a file,
// downloading it if needed. Outcomes are values ([present, info]) with the reference's
// exact strings; only a malformed SHA-1 is an error (a fault, touching no file).
//
// Downloads run asynchronously and never block other calls. Concurrent calls for the
// same SHA-1 share one download: the manager asks for all of a job's files at once, and
// two jobs may share a chroot.

import fs from "node:fs";
import type { Logger } from "pino";
import { FetchError, fetchToFile, type FetchLimits } from "./fetch.js";
import { assertSha1 } from "./names.js";
import { NotEnoughSpace, type FileCache } from "./store.js";
import { Downloads } from "./downloads.js";

export type EnsureResult = [present: boolean, info: string];

/** The reference's exact text: managers match on it, so it stays the prefix. */
export const DIGEST_MISMATCH = "Digests did not match, removing again!";
/** The fixed text, then which digest was asked for and which the body had. */
export function digestMismatch(expected: string, actual: string): string {
  return `${DIGEST_MISMATCH} (expected ${expected}, got ${actual})`;
}
const librarianError = (reason: string): EnsureResult => [
  false,
  `Error accessing Librarian: ${reason}`,
];

export class EnsurePresent {
  private readonly inflight = new Map<string, Promise<EnsureResult>>();
  /** Aborted by close(): shutdown stops every download before the journal closes. */
  private readonly stopping = new AbortController();
  /** Set by stopAccepting() (shutdown): no new download starts. */
  private refusing = false;

  constructor(
    private readonly cache: FileCache,
    private readonly limits: FetchLimits,
    private readonly log: Logger,
    /** Where downloads in progress and their totals are shown (status(), the page). */
    readonly downloads: Downloads = new Downloads(),
  ) {}

  async ensure(
    sha1: string,
    url: string | null,
    username: string | null,
    password: string | null,
  ): Promise<EnsureResult> {
    assertSha1(sha1, "ensurepresent() sha1");
    if (url === null) return [this.cache.has(sha1), "No URL"];
    if (this.cache.has(sha1)) {
      this.cache.touch(sha1);
      return [true, "Cache"];
    }
    const running = this.inflight.get(sha1);
    if (running) return running;
    if (this.refusing) return librarianError("the builder is shutting down; not downloading");
    const download = this.download(sha1, url, username, password).finally(() =>
      this.inflight.delete(sha1),
    );
    this.inflight.set(sha1, download);
    return download;
  }

  /** Shutdown begins: downloads in flight go on, new ones are refused with a reason. */
  stopAccepting(): void {
    this.refusing = true;
  }

  /** Resolves once no download is in flight. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()]);
  }

  /** Shutdown: abort the downloads in flight (each answers its caller) and wait for them. */
  async close(): Promise<void> {
    this.stopAccepting();
    this.stopping.abort();
    await Promise.allSettled([...this.inflight.values()]);
  }

  private async download(
    sha1: string,
    url: string,
    username: string | null,
    password: string | null,
  ): Promise<EnsureResult> {
    const temp = this.cache.tempPath();
    // The space promised to this download; released when it is committed or abandoned.
    let releaseReservation = (): void => undefined;
    const log = this.log.child({ sha1, url });
    log.info("fetching");
    const shown = this.downloads.begin(sha1, url);
    // The cause it failed with, for /metrics; null once it is in the cache.
    let failure: string | null = "local";
    try {
      const result = await fetchToFile({
        url,
        username,
        password,
        destPath: temp,
        limits: this.limits,
        signal: this.stopping.signal,
        onProgress: (bytes) => shown.progress(bytes),
        onResponse: (contentLength) => {
          shown.total(contentLength);
          // Make room before the first byte is written, so a download that cannot fit
          // is refused up front instead of filling the disk.
          releaseReservation = this.cache.reserve(contentLength ?? 0);
        },
      });
      if (result.sha1 !== sha1) {
        log.warn({ actual: result.sha1 }, "digest mismatch");
        failure = "digest_mismatch";
        return [false, digestMismatch(sha1, result.sha1)];
      }
      // A body without Content-Length could not be reserved up front: check now.
      releaseReservation();
      this.cache.reserve(result.bytes, true);
      await this.cache.commit(temp, sha1, result.bytes);
      log.info({ bytes: result.bytes }, "downloaded");
      failure = null;
      return [true, "Download"];
    } catch (err) {
      if (err instanceof NotEnoughSpace) {
        log.warn({ reason: err.message }, "refused: no space");
        failure = "no_space";
        return librarianError(err.message);
      }
      if (err instanceof FetchError) {
        const cause = err.cause instanceof NotEnoughSpace ? err.cause.message : err.reason;
        failure =
          err.cause instanceof NotEnoughSpace
            ? "no_space"
            : err.code.replace(/^BUILDD_ERR_FETCH_/, "").toLowerCase();
        log.warn({ reason: cause }, "download failed");
        return librarianError(cause);
      }
      throw err;
    } finally {
      shown.end(failure);
      releaseReservation();
      // Whatever happened, nothing but a committed entry stays in the cache directory.
      fs.rmSync(temp, { force: true });
    }
  }
}
