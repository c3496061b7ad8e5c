// The page's stylesheet and script, served from /assets/ (no inline code, so the page's
// Content-Security-Policy can forbid inline scripts altogether). Written as plain ES2017
// for any current browser: no build step, no framework. The script only ever sets
// textContent, never HTML, so what the API returns cannot become markup.

export const PAGE_CSS = `
[hidden] { display: none !important; }
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --muted: #6e7781; }
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 0 12px 24px; max-width: 1100px; }
h1 { font-size: 1.4em; margin: 12px 0 4px; }
h2 { font-size: 1.1em; margin: 20px 0 6px; border-bottom: 1px solid var(--muted); }
h3 { font-size: 1em; margin: 12px 0 4px; }
header p { margin: 0; color: var(--muted); }
.state { padding: 1px 8px; border-radius: 4px; border: 1px solid var(--muted); }
.draining { padding: 1px 8px; border-radius: 4px; background: var(--bad); color: #fff; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; display: block; overflow-x: auto; }
th, td { text-align: left; padding: 3px 8px 3px 0; vertical-align: top; }
td.sha1, td.url { font-family: ui-monospace, monospace; font-size: 0.85em; overflow-wrap: anywhere; }
tr.bad td:nth-child(3) { color: var(--bad); }
tr.ok td:nth-child(3) { color: var(--ok); }
pre#log { font: 12px/1.35 ui-monospace, monospace; max-height: 60vh; overflow: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; padding: 6px; border: 1px solid var(--muted); margin: 0; }
.stale { opacity: 0.5; }
`;

export const PAGE_JS = `"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var LOG_KEEP = 256 * 1024;

  function fmtBytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], v = n, u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return u === 0 ? n + " B" : v.toFixed(1) + " " + units[u];
  }
  function pad(n) { return String(n).padStart(2, "0"); }
  function fmtSeconds(s) {
    var t = Math.floor(s);
    if (t < 60) return t + " s";
    if (t < 3600) return Math.floor(t / 60) + " min " + pad(t % 60) + " s";
    return Math.floor(t / 3600) + " h " + pad(Math.floor((t % 3600) / 60)) + " min";
  }
  function setText(id, text) {
    var e = $(id);
    if (e && e.textContent !== text) e.textContent = text;
  }
  function row(cells, className) {
    var tr = document.createElement("tr");
    if (className) tr.className = className;
    cells.forEach(function (c) {
      var td = document.createElement("td");
      td.textContent = c[0];
      if (c[1]) td.className = c[1];
      if (c[2] !== undefined) td.setAttribute("data-bytes", String(c[2]));
      tr.appendChild(td);
    });
    return tr;
  }
  function getJson(path) {
    return fetch(path, { headers: { accept: "application/json" }, cache: "no-store" }).then(function (r) {
      if (r.status === 404) return null;
      if (!r.ok) throw new Error(path + " answered " + r.status);
      return r.json();
    });
  }

  var shown = null;
  function showStatus(s) {
    setText("state", s.state);
    document.title = "buildd " + s.state;
    $("draining").hidden = !s.draining;
    var b = s.build;
    $("no-build").hidden = !!b;
    $("build-id").parentNode.hidden = !b;
    if (b) {
      setText("build-id", b.build_id);
      setText("build-type", b.type || "");
      setText("build-step", b.step || "");
      setText("build-elapsed", b.elapsed_seconds === null ? "" : fmtSeconds(b.elapsed_seconds));
      setText("build-result", b.result || "running");
    }
    var tbody = $("downloads");
    tbody.replaceChildren.apply(tbody, s.downloads.map(function (d) {
      var total = d.total === null ? "?" : fmtBytes(d.total);
      return row([[d.sha1, "sha1"], [d.url, "url"], [fmtBytes(d.bytes) + " / " + total, "bytes", d.bytes],
        [fmtBytes(d.rate_bytes_per_second) + "/s", "rate"]]);
    }));
    $("no-downloads").hidden = s.downloads.length > 0;
    // A new state or a new build: the history and the cache have changed too.
    var key = s.state + " " + (b ? b.seq + " " + b.result : "");
    if (key !== shown) { shown = key; refreshSlow(); }
  }

  function followLog(b, rounds) {
    var pre = $("log");
    if (!b || b.seq === null) {
      pre.setAttribute("data-seq", "");
      pre.textContent = "";
      $("log-link").hidden = true;
      return Promise.resolve();
    }
    if (pre.getAttribute("data-seq") !== String(b.seq)) {
      pre.setAttribute("data-seq", String(b.seq));
      pre.setAttribute("data-offset", "0");
      pre.textContent = "";
    }
    var offset = pre.getAttribute("data-offset") || "0";
    return getJson("/api/v1/builds/" + b.seq + "/log?offset=" + offset).then(function (chunk) {
      if (!chunk) return;
      $("log-link").hidden = false;
      if (chunk.text) {
        var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.appendChild(document.createTextNode(chunk.text));
        if (pre.textContent.length > LOG_KEEP) pre.textContent = pre.textContent.slice(-LOG_KEEP / 2);
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
      pre.setAttribute("data-offset", String(chunk.next_offset));
      // Catch up on a fast log a few chunks at a time, then let the next tick go on.
      if (chunk.next_offset < chunk.size && rounds > 1) return followLog(b, rounds - 1);
    });
  }

  // The history, the cache, the slots and the Buildbot connection: every 5 s, and at once
  // when the builder's state changes.
  function refreshSlow() {
    refreshBuildbot();
    getJson("/api/v1/builds?limit=20").then(function (h) {
      if (!h) return;
      var tbody = $("history");
      tbody.replaceChildren.apply(tbody, h.builds.map(function (b) {
        return row([[String(b.seq)], [b.build_id, "build-id"], [b.type], [b.result || "running", "result"],
          [b.started_at], [b.duration_seconds === null ? "" : fmtSeconds(b.duration_seconds)]]);
      }));
    }).catch(stale);
    getJson("/api/v1/cache").then(function (c) {
      if (!c) return;
      setText("cache-used", fmtBytes(c.used_bytes) + " of " + (c.budget_bytes > 0 ? fmtBytes(c.budget_bytes) : "no budget"));
      setText("cache-free", fmtBytes(c.free_bytes) + " (reserve " + (c.reserve_bytes > 0 ? fmtBytes(c.reserve_bytes) : "no reserve") + ")");
      setText("cache-entries", String(c.entries));
      setText("cache-evictions", String(c.evictions));
    }).catch(stale);
  }

  function describeHolder(h) {
    return (h.kind === "launchpad" ? "Launchpad build " : "Buildbot builder ") + JSON.stringify(h.label);
  }
  function refreshBuildbot() {
    getJson("/api/v1/slots").then(function (s) {
      if (!s) return;
      var who = s.held.map(describeHolder).join(", ");
      setText("slots", s.held.length + " of " + s.max + " in use" + (who ? ": " + who : "") +
        (s.waiting.length > 0 ? "; " + s.waiting.length + " waiting" : ""));
    }).catch(stale);
    if (!$("buildbot-state")) return;
    getJson("/api/v1/buildbot").then(function (r) {
      var b = r && r.buildbot;
      if (!b) return;
      setText("buildbot-state", b.state);
      setText("buildbot-since", b.since);
      setText("buildbot-error", b.last_error || "none");
      setText("buildbot-next", b.next_attempt_at ? "next attempt at " + b.next_attempt_at : "");
      setText("buildbot-builders", b.builders.join(", "));
      var tbody = $("buildbot-running");
      tbody.replaceChildren.apply(tbody, b.running.map(function (c) {
        return row([[c.builder], [c.command], [c.command_id], [c.started_at]]);
      }));
    }).catch(stale);
  }

  function stale() { document.body.classList.add("stale"); }

  function tick() {
    getJson("/api/v1/status").then(function (s) {
      document.body.classList.remove("stale");
      showStatus(s);
      return followLog(s.build, 8);
    }).catch(stale).then(function () { setTimeout(tick, 1000); });
  }
  setInterval(refreshSlow, 5000);
  tick();
})();
`;
