/* The log view of a step: draws only the lines in view of a log of any length, fetching them by range
   as they scroll in, and follows the end of a running step's log. Text goes in as text, never as markup. */
(function () {
  "use strict";
  var BLOCK = 500; // lines per range request
  var OVERSCAN = 40; // lines drawn above and below the visible ones
  var KEEP = 20000; // lines kept in memory; those far from view are dropped
  var POLL_MS = 1000;
  var RANGE = 2000; // lines one poll asks for (the server's most per request)
  var REQUEST_MS = 10000; // a range request not answered by then is given up and asked again

  function LogView(root) {
    this.root = root;
    this.url = root.dataset.lines;
    this.total = parseInt(root.dataset.total, 10) || 0;
    this.skipped = parseInt(root.dataset.skipped, 10) || 0;
    this.running = root.dataset.running === "true";
    this.scroller = root.querySelector(".log-scroll");
    this.spacer = root.querySelector(".log-spacer");
    this.pre = root.querySelector("pre.log");
    this.count = root.querySelector(".log-count");
    this.empty = root.querySelector(".log-empty");
    this.lines = new Map();
    this.pending = new Set();
    this.follow = true;
    this.frame = 0;
    var first = parseInt(root.dataset.first, 10) || 0;
    var drawn = this.pre.querySelectorAll(".line");
    for (var i = 0; i < drawn.length; i++) this.lines.set(first + i, drawn[i].textContent);
    root.classList.add("virtual");
    this.rowHeight = parseFloat(window.getComputedStyle(this.pre).lineHeight) || 17;
    var self = this;
    this.scroller.addEventListener("scroll", function () {
      var s = self.scroller;
      self.follow = s.scrollTop + s.clientHeight >= s.scrollHeight - self.rowHeight;
      self.schedule();
    });
    this.resize();
    this.toEnd();
    this.draw();
    if (this.running) this.poll();
  }

  LogView.prototype.resize = function () {
    this.spacer.style.height = this.total * this.rowHeight + "px";
    this.scroller.hidden = this.total === 0;
    if (this.empty) this.empty.hidden = this.total > 0;
    if (this.count) this.count.textContent = this.total.toLocaleString("en-US") + (this.total === 1 ? " line" : " lines");
  };

  LogView.prototype.toEnd = function () {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  };

  LogView.prototype.schedule = function () {
    var self = this;
    if (this.frame) return;
    this.frame = window.requestAnimationFrame(function () {
      self.frame = 0;
      self.draw();
    });
  };

  LogView.prototype.draw = function () {
    var h = this.rowHeight;
    var top = this.scroller.scrollTop;
    var height = this.scroller.clientHeight || 420;
    var first = Math.max(0, Math.floor(top / h) - OVERSCAN);
    var last = Math.min(this.total, Math.ceil((top + height) / h) + OVERSCAN);
    var rows = document.createDocumentFragment();
    var missing = [];
    for (var i = first; i < last; i++) {
      var row = document.createElement("span");
      var text = this.lines.get(i);
      if (text === undefined) {
        row.className = "gap";
        row.textContent = "…";
        var block = Math.floor(i / BLOCK);
        if (missing[missing.length - 1] !== block) missing.push(block);
      } else {
        row.className = "line";
        row.textContent = text;
      }
      rows.appendChild(row);
    }
    this.pre.replaceChildren(rows);
    this.pre.style.top = first * h + "px";
    this.pre.dataset.first = String(first);
    for (var k = 0; k < missing.length; k++) this.fetch(missing[k] * BLOCK, BLOCK);
    if (this.lines.size > KEEP) this.forget(first, last);
  };

  LogView.prototype.forget = function (first, last) {
    var self = this;
    this.lines.forEach(function (_, n) {
      if (n < first - KEEP / 4 || n > last + KEEP / 4) self.lines.delete(n);
    });
  };

  LogView.prototype.fetch = function (start, count) {
    // Resolves to whether the range came in; never rejects, so whoever waits on it goes on.
    var key = start + ":" + count;
    if (this.pending.has(key)) return Promise.resolve(false);
    this.pending.add(key);
    var self = this;
    // A request that never answers (a loaded server, a dropped connection) would hold this range, and the
    // poll waiting on it, for good: it is given up after a while and asked again.
    var abort = typeof AbortController === "function" ? new AbortController() : null;
    var timer = window.setTimeout(function () {
      if (abort) abort.abort();
    }, REQUEST_MS);
    return window
      .fetch(this.url + "?start=" + start + "&count=" + count, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: abort ? abort.signal : undefined,
      })
      .then(function (r) {
        if (!r.ok) throw new Error("the log answered " + r.status);
        return r.json();
      })
      .then(function (d) {
        window.clearTimeout(timer);
        self.pending.delete(key);
        self.accept(d);
        return true;
      })
      .catch(function () {
        window.clearTimeout(timer);
        // A failed range stays a gap; scrolling (or the next poll) asks for it again.
        window.setTimeout(function () {
          self.pending.delete(key);
        }, POLL_MS);
        return false;
      });
  };

  LogView.prototype.accept = function (d) {
    var problem = this.root.querySelector(".log-problem");
    if (problem) problem.remove(); // the log reads now
    if (d.skipped !== this.skipped) {
      // The log outgrew what the page shows: line numbers moved, so what was kept is stale.
      this.lines.clear();
      this.skipped = d.skipped;
    }
    for (var i = 0; i < d.lines.length; i++) this.lines.set(d.start + i, d.lines[i]);
    var grew = d.total !== this.total;
    this.total = d.total;
    this.running = d.running;
    if (grew) {
      this.resize();
      if (this.follow) this.toEnd();
    }
    this.draw();
  };

  LogView.prototype.poll = function () {
    var self = this;
    if (this.polling) return; // one loop per view, however often it is asked to start
    this.polling = true;
    function tick() {
      if (!self.root.isConnected) {
        self.polling = false; // the page replaced this view: its successor polls
        return;
      }
      // The last line again too: a running step may have been mid-line.
      var start = Math.max(0, self.total - 1);
      self.pending.delete(start + ":" + RANGE);
      self.fetch(start, RANGE).then(function (ok) {
        // Only an answer ends the loop: a failed or timed-out request is asked again at the next tick.
        if (ok && !self.running) {
          self.polling = false;
          self.ended();
        } else {
          window.setTimeout(tick, POLL_MS);
        }
      });
    }
    window.setTimeout(tick, POLL_MS);
  };

  LogView.prototype.ended = function () {
    var live = this.root.querySelector(".log-summary .live");
    if (live) live.remove();
    this.root.dataset.running = "false";
  };

  function start(within) {
    var scope = within && within.querySelectorAll ? within : document;
    var found = Array.prototype.slice.call(scope.querySelectorAll(".logs[data-lines]"));
    if (scope.matches && scope.matches(".logs[data-lines]")) found.push(scope);
    for (var i = 0; i < found.length; i++) {
      if (!found[i].logView && found[i].querySelector(".log-scroll")) found[i].logView = new LogView(found[i]);
    }
  }

  // Content htmx swaps in may hold a log view too; each is started once.
  document.addEventListener("htmx:load", function (e) {
    start(e.target);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      start(document);
    });
  } else {
    start(document);
  }
})();
