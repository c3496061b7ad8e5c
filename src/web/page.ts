// The status page: everything an operator wants at a glance, rendered on the server so it
// reads without JavaScript (and on a phone); /assets/page.js then keeps it current —
// state, step, downloads, the log's new lines — by polling the JSON API.

import type { BuildbotStatus } from "../protocol/buildbot.js";
import { describeHolder } from "../protocol/slots.js";
import type {
  BuildInfo,
  CacheFigures,
  CapabilityInfo,
  LogChunk,
  SlotsInfo,
  WebDeps,
} from "./deps.js";
import { formatBytes, formatSeconds, html, type Html } from "./html.js";
import { buildJson, statusJson, type StatusJson } from "./json.js";

/** How much of the log the page shows at first; the rest is a link away. */
export const PAGE_LOG_BYTES = 16 * 1024;
const HISTORY_ROWS = 20;

/** The last `bytes` of the current build's log, starting at a line. */
export function logTail(deps: WebDeps, bytes: number): LogChunk | null {
  const end = deps.readLog(Number.MAX_SAFE_INTEGER, 0);
  if (!end) return null;
  const from = Math.max(0, end.size - bytes);
  const chunk = deps.readLog(from, bytes);
  if (!chunk || from === 0) return chunk;
  const nl = chunk.text.indexOf("\n");
  return nl < 0 ? chunk : { ...chunk, text: chunk.text.slice(nl + 1) };
}

function buildSection(s: StatusJson, log: LogChunk | null): Html {
  const b = s.build;
  const rows = b
    ? html`<dl>
        <dt>Build</dt>
        <dd id="build-id">${b.build_id}</dd>
        <dt>Type</dt>
        <dd id="build-type">${b.type ?? ""}</dd>
        <dt>Step</dt>
        <dd id="build-step">${b.step ?? ""}</dd>
        <dt>Elapsed</dt>
        <dd id="build-elapsed">
          ${b.elapsed_seconds === null ? "" : formatSeconds(b.elapsed_seconds)}
        </dd>
        <dt>Result</dt>
        <dd id="build-result">${b.result ?? "running"}</dd>
      </dl>`
    : html`<dl hidden>
        <dt>Build</dt>
        <dd id="build-id"></dd>
        <dt>Type</dt>
        <dd id="build-type"></dd>
        <dt>Step</dt>
        <dd id="build-step"></dd>
        <dt>Elapsed</dt>
        <dd id="build-elapsed"></dd>
        <dt>Result</dt>
        <dd id="build-result"></dd>
      </dl>`;
  return html`<section id="build">
    <h2>Current build</h2>
    <p id="no-build" ${b ? html` hidden` : ""}>No build: the builder is idle.</p>
    ${rows}
    <h3>
      Log <a id="log-link" href="/filecache/buildlog" ${log ? "" : html` hidden`}>whole log</a>
    </h3>
    <pre id="log" data-seq="${b?.seq ?? ""}" data-offset="${log?.nextOffset ?? 0}">
${log?.text ?? ""}</pre>
  </section>`;
}

function downloadsSection(s: StatusJson): Html {
  const rows = s.downloads.map(
    (d) =>
      html`<tr>
        <td class="sha1">${d.sha1}</td>
        <td class="url">${d.url}</td>
        <td class="bytes" data-bytes="${d.bytes}">
          ${formatBytes(d.bytes)} / ${d.total === null ? "?" : formatBytes(d.total)}
        </td>
        <td class="rate">${formatBytes(d.rate_bytes_per_second)}/s</td>
      </tr>`,
  );
  return html`<section id="downloads-section">
    <h2>Downloads</h2>
    <table>
      <thead>
        <tr>
          <th>SHA-1</th>
          <th>URL</th>
          <th>Received</th>
          <th>Rate</th>
        </tr>
      </thead>
      <tbody id="downloads">
        ${rows}
      </tbody>
    </table>
    <p id="no-downloads" ${rows.length > 0 ? html` hidden` : ""}>No downloads in progress.</p>
  </section>`;
}

function cacheSection(c: CacheFigures): Html {
  const budget = c.budgetBytes > 0 ? formatBytes(c.budgetBytes) : "no budget";
  const reserve = c.reserveBytes > 0 ? formatBytes(c.reserveBytes) : "no reserve";
  return html`<section id="cache">
    <h2>File cache</h2>
    <dl>
      <dt>Used</dt>
      <dd id="cache-used">${formatBytes(c.usedBytes)} of ${budget}</dd>
      <dt>Free</dt>
      <dd id="cache-free">${formatBytes(c.freeBytes)} (reserve ${reserve})</dd>
      <dt>Entries</dt>
      <dd id="cache-entries">${c.entries}</dd>
      <dt>Evictions</dt>
      <dd id="cache-evictions">${c.evictions}</dd>
    </dl>
  </section>`;
}

function capabilitiesSection(caps: readonly CapabilityInfo[]): Html {
  const rows = caps.map(
    (c) =>
      html`<tr class="${c.available ? "ok" : "bad"}">
        <td>${c.name}</td>
        <td>${c.version ?? ""}</td>
        <td>${c.available ? "available" : "unavailable"}</td>
        <td>${c.reason}</td>
      </tr>`,
  );
  return html`<section id="capabilities-section">
    <h2>Capabilities</h2>
    ${
      caps.length === 0
        ? html`<p>None declared.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Version</th>
                <th>Probe</th>
                <th>Reason</th>
              </tr>
            </thead>
            <tbody id="capabilities">
              ${rows}
            </tbody>
          </table>`
    }
  </section>`;
}

/** One line: how many of the machine's build slots are in use, and by what. */
export function slotsLine(s: SlotsInfo): string {
  const who = s.held.map(describeHolder).join(", ");
  const queue = s.waiting.length > 0 ? `; ${s.waiting.length} waiting` : "";
  return `${s.held.length} of ${s.max} in use${who ? `: ${who}` : ""}${queue}`;
}

function buildbotSection(b: BuildbotStatus | null, slots: SlotsInfo): Html {
  const slotsRow = html`<dt>Build slots</dt>
    <dd id="slots">${slotsLine(slots)}</dd>`;
  if (b === null) {
    return html`<section id="buildbot">
      <h2>Buildbot</h2>
      <p>No Buildbot master is configured ([buildbot] master).</p>
      <dl>${slotsRow}</dl>
    </section>`;
  }
  const next =
    b.nextAttemptAt === null ? "" : `next attempt at ${new Date(b.nextAttemptAt).toISOString()}`;
  const rows = b.running.map(
    (c) =>
      html`<tr>
        <td>${c.builder}</td>
        <td>${c.command}</td>
        <td>${c.commandId}</td>
        <td><time>${new Date(c.startedAt).toISOString()}</time></td>
      </tr>`,
  );
  return html`<section id="buildbot">
    <h2>Buildbot</h2>
    <dl>
      <dt>Master</dt>
      <dd id="buildbot-master">${b.master}</dd>
      <dt>Worker</dt>
      <dd id="buildbot-name">${b.name}</dd>
      <dt>Connection</dt>
      <dd>
        <span id="buildbot-state" class="state">${b.state}</span> since
        <time id="buildbot-since">${new Date(b.since).toISOString()}</time>
      </dd>
      <dt>Last error</dt>
      <dd id="buildbot-error">${b.lastError ?? "none"}</dd>
      <dt>Next attempt</dt>
      <dd id="buildbot-next">${next}</dd>
      <dt>Builders</dt>
      <dd id="buildbot-builders">${b.builders.join(", ")}</dd>
      ${slotsRow}
    </dl>
    <table>
      <thead>
        <tr>
          <th>Builder</th>
          <th>Command</th>
          <th>Id</th>
          <th>Started (UTC)</th>
        </tr>
      </thead>
      <tbody id="buildbot-running">
        ${rows}
      </tbody>
    </table>
  </section>`;
}

function historySection(builds: readonly BuildInfo[]): Html {
  const rows = builds.map((b) => {
    const j = buildJson(b);
    return html`<tr>
      <td>${j.seq}</td>
      <td class="build-id">${j.build_id}</td>
      <td>${j.type}</td>
      <td class="result">${j.result ?? "running"}</td>
      <td><time>${j.started_at}</time></td>
      <td>${j.duration_seconds === null ? "" : formatSeconds(j.duration_seconds)}</td>
    </tr>`;
  });
  return html`<section id="history-section">
    <h2>Last builds</h2>
    <table>
      <thead>
        <tr>
          <th>#</th>
          <th>Build</th>
          <th>Type</th>
          <th>Result</th>
          <th>Started (UTC)</th>
          <th>Duration</th>
        </tr>
      </thead>
      <tbody id="history">
        ${rows}
      </tbody>
    </table>
  </section>`;
}

export function renderPage(deps: WebDeps): string {
  const status = statusJson(deps);
  const log = status.build ? logTail(deps, PAGE_LOG_BYTES) : null;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>buildd ${status.state}</title>
        <link rel="stylesheet" href="/assets/page.css" />
        <script src="/assets/page.js" defer></script>
      </head>
      <body>
        <header>
          <h1>
            buildd <span id="state" class="state">${status.state}</span>
            <span id="draining" class="draining" ${status.draining ? "" : html` hidden`}
              >draining</span
            >
          </h1>
          <p>
            ${status.architecture} · version ${status.version} · <a href="/api/v1/status">JSON</a> ·
            <a href="/metrics">metrics</a>
          </p>
          <noscript><p>Reload the page to see changes.</p></noscript>
        </header>
        <main>
          ${buildSection(status, log)} ${buildbotSection(deps.buildbot(), deps.slots())}
          ${downloadsSection(status)} ${cacheSection(deps.cache())}
          ${capabilitiesSection(deps.capabilities())} ${historySection(deps.builds(HISTORY_ROWS))}
        </main>
      </body>
    </html> `.text;
}
