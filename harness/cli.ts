// `npm run harness`: start a real builder on a free port with temporary directories and
// print its URL, so test suites in other languages can drive a real builder too.
// Stops (and removes its directories) on SIGINT/SIGTERM.

import { startTestBuilder } from "./builder.js";

const builder = await startTestBuilder();
console.log(JSON.stringify({ url: builder.url, rpc: `${builder.url}/rpc`, dir: builder.dir }));
const stop = (): void => {
  void builder.stop().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
