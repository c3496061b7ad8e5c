// Hooks for node:test suites, kept apart from the rest of the harness (which benchmarks
// use too, outside any test run).

import { after, before } from "node:test";
import { startLibrarian, type Librarian } from "./librarian.js";

/**
 * In a describe(): a librarian started before the suite's tests and closed after them.
 * Returns a getter, since the librarian exists only once the suite runs.
 */
export function suiteLibrarian(): () => Librarian {
  let lib: Librarian | null = null;
  before(async () => {
    lib = await startLibrarian();
  });
  after(async () => {
    await lib?.close();
  });
  return () => {
    if (lib === null) throw new Error("the suite's librarian is used outside its tests");
    return lib;
  };
}
