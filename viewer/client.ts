// The run page's script, served inline under a CSP nonce (no build step). It follows each log,
// and both in print order, over server-sent events and applies the pre-parsed terminal
// operations the server sends (see ansi.ts) with DOM text APIs only: stored bytes never reach
// innerHTML.

/** The script's source. Plain ES2017 so any browser runs it as is. */
export const RUN_PAGE_SCRIPT: string = `"use strict";
(function () {
  var doc = document;
  var badge = doc.getElementById("liveness");
  function setBadge(word) {
    if (!badge) return;
    badge.textContent = word;
    badge.className = "badge badge-" + word;
  }
  // Tabs: without the script every pane shows; with it one at a time.
  var tabs = doc.querySelectorAll("[data-tab]");
  function show(name) {
    doc.querySelectorAll(".pane").forEach(function (pane) {
      pane.hidden = pane.getAttribute("data-pane") !== name;
    });
    tabs.forEach(function (tab) {
      tab.setAttribute("aria-selected", String(tab.getAttribute("data-tab") === name));
    });
  }
  tabs.forEach(function (tab) {
    tab.addEventListener("click", function () { show(tab.getAttribute("data-tab")); });
  });
  if (tabs.length > 0) show("stdout");

  // Heartbeat age, counted on from the server's reading.
  var age = doc.getElementById("heartbeat-age");
  var started = Date.now();
  var base = age ? Number(age.getAttribute("data-age-ms")) : NaN;
  var ticking = age && !isNaN(base) && badge && badge.textContent === "live";
  var ticker = ticking ? setInterval(function () {
    age.textContent = Math.round((base + Date.now() - started) / 1000) + " s ago";
  }, 1000) : undefined;

  // A terminal writing into a log: the combined log has one per stream, each with its own
  // current line (a stream's open line goes on where it is while the other's lines come after).
  function terminal(log, channel, openAttr) {
    return { log: log, channel: channel, open: log.getAttribute(openAttr) === "1", pending: false };
  }
  function atBottom(log) {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }
  function newLine(term) {
    var line = doc.createElement("div");
    line.className = "line" + (term.channel ? " ch-" + term.channel : "");
    term.log.appendChild(line);
    return line;
  }
  function currentLine(term) {
    var lines = term.log.querySelectorAll(term.channel ? ".ch-" + term.channel : ".line");
    return lines.length > 0 ? lines[lines.length - 1] : newLine(term);
  }
  function apply(term, ops) {
    var follow = atBottom(term.log);
    for (var i = 0; i < ops.length; i++) {
      var op = ops[i];
      if (op[0] === "n") {
        if (!term.open) newLine(term);
        term.open = false;
        term.pending = false;
      } else if (op[0] === "r") {
        term.pending = true;
      } else if (op[0] === "t") {
        var line;
        if (!term.open) { line = newLine(term); term.open = true; }
        else { line = currentLine(term); if (term.pending) line.textContent = ""; }
        term.pending = false;
        var segments = op[1];
        for (var j = 0; j < segments.length; j++) {
          var span = doc.createElement("span");
          span.textContent = String(segments[j].t);
          if (typeof segments[j].s === "string") span.style.cssText = segments[j].s;
          line.appendChild(span);
        }
      }
    }
    if (follow) term.log.scrollTop = term.log.scrollHeight;
  }

  // Each pane follows its own event stream; the badge and the note change once all have ended.
  var following = 0;
  function done(word) {
    following--;
    if (word === "stale") setBadge("stale");
    else if (following === 0) setBadge(word);
    if (following === 0 && ticker !== undefined) clearInterval(ticker);
    var note = doc.getElementById("status-note");
    if (note && following === 0) {
      note.textContent = word === "stale"
        ? "The run stopped heartbeating before it finished. "
        : "The run ended. ";
      var reload = doc.createElement("a");
      reload.href = location.pathname;
      reload.textContent = "Reload for its final records";
      note.appendChild(reload);
      var soFar = doc.getElementById("so-far");
      if (soFar) soFar.textContent = "";
      if (age && word !== "stale") age.textContent = "none (the run ended)";
    }
  }
  function listen(url, onMessage) {
    var source = new EventSource(url);
    following++;
    source.onmessage = onMessage;
    source.addEventListener("end", function (event) {
      source.close();
      var info = JSON.parse(event.data);
      var status = doc.getElementById("status");
      if (status && typeof info.status === "string") status.textContent = info.status;
      var exit = doc.getElementById("exit-code");
      if (exit && typeof info.exitCode === "number") exit.textContent = String(info.exitCode);
      done(typeof info.badge === "string" ? info.badge : "finished");
    });
    source.addEventListener("stale", function () {
      source.close();
      done("stale");
    });
  }

  doc.querySelectorAll("pre.log[data-events][data-offset]").forEach(function (log) {
    var own = terminal(log, "", "data-open");
    listen(log.getAttribute("data-events") + "?from=" + log.getAttribute("data-offset"),
      function (event) { apply(own, JSON.parse(event.data)); });
  });

  // Both streams in print order, from the cursor after the lines the server rendered.
  var combined = doc.getElementById("log-combined");
  if (combined && combined.hasAttribute("data-events")) {
    var streams = {
      stdout: terminal(combined, "stdout", "data-open-stdout"),
      stderr: terminal(combined, "stderr", "data-open-stderr")
    };
    var cursor = combined.getAttribute("data-cursor");
    listen(combined.getAttribute("data-events") +
      (cursor ? "?from=" + encodeURIComponent(cursor) : ""), function (event) {
      var item = JSON.parse(event.data);
      var term = item.c === "stdout" ? streams.stdout : item.c === "stderr" ? streams.stderr : null;
      if (term) apply(term, item.ops);
    });
  }
})();
`;
