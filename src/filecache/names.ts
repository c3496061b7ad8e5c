// What may name a file in the cache. The manager only ever sends lowercase hex SHA-1s;
// accepting anything else would let a caller probe or write arbitrary paths.

import { invalidArgument } from "../errors.js";

const SHA1 = /^[0-9a-f]{40}$/;

export function isSha1(name: string): boolean {
  return SHA1.test(name);
}

export function assertSha1(value: string, what: string): void {
  if (!isSha1(value)) {
    throw invalidArgument(
      `${what} must be 40 lowercase hexadecimal digits (a SHA-1), got ${JSON.stringify(value.slice(0, 80))}`,
    );
  }
}
