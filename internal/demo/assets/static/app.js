// latch demo: localises times and runs the idle countdown. Served as a
// file (the Content-Security-Policy allows no inline script). It never sees
// the session cookie: the cookie is HttpOnly.
(function () {
  "use strict";

  // Show absolute times in the reader's time zone.
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d.getTime())) return;
    el.title = el.textContent;
    el.textContent = d.toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit"
    });
  });

  var box = document.getElementById("idle");
  if (!box) return;
  var out = document.getElementById("idle-left");
  var overlay = document.getElementById("expired");
  var statusURL = box.getAttribute("data-status-url");
  var sessionID = box.getAttribute("data-session-id");
  var pollMS = Math.max(1000, Number(box.getAttribute("data-poll-ms")) || 15000);
  // The deadline is kept on the monotonic clock, from the time left the
  // server reported: the device's wall clock may be wrong.
  var deadline = performance.now() + (Number(box.getAttribute("data-left-ms")) || 0);
  var ended = false;
  var checking = false;
  var timers = [];

  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function format(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h > 0 ? h + ":" + pad(m) + ":" + pad(sec) : m + ":" + pad(sec);
  }

  function tick() {
    if (ended) return;
    var left = deadline - performance.now();
    out.textContent = format(left);
    box.classList.toggle("is-warning", left <= 60000 && left > 0);
    if (left <= 0) {
      // Our deadline passed; ask the server before giving up: another tab
      // may have kept the session alive.
      check(true);
    }
  }

  // check asks the server how long the session has left. The request is a
  // read-only GET that does not count as activity.
  function check(atDeadline) {
    if (checking || ended) return;
    checking = true;
    fetch(statusURL, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } })
      .then(function (res) {
        if (!res.ok) throw new Error("status " + res.status);
        return res.json();
      })
      .then(function (st) {
        if (st.authenticated && st.session_id !== sessionID) {
          // The cookie now names another session: this browser signed in
          // again in another tab.
          end("replaced");
        } else if (st.authenticated) {
          deadline = performance.now() + st.idle_left_ms;
        } else {
          end(st.reason);
        }
      })
      .catch(function () {
        // The server could not say. At the deadline, the session is over
        // as far as this page knows; otherwise keep counting.
        if (atDeadline) end("expired");
      })
      .then(function () { checking = false; });
  }

  function end(reason) {
    if (ended) return;
    ended = true;
    timers.forEach(clearInterval);
    box.classList.remove("is-warning");
    var dialog = overlay.querySelector(".dialog");
    if (reason === "ended" || reason === "replaced") {
      // The session did not run out, so the countdown says what happened
      // instead of showing a red 0:00.
      document.getElementById("idle-label").textContent = dialog.getAttribute("data-" + reason + "-label");
      out.textContent = dialog.getAttribute("data-" + reason + "-countdown");
      box.classList.add("is-ended");
      var link = document.getElementById("expired-login");
      document.getElementById("expired-heading").textContent = dialog.getAttribute("data-" + reason + "-heading");
      document.getElementById("expired-message").textContent = dialog.getAttribute("data-" + reason + "-message");
      link.setAttribute("href", dialog.getAttribute("data-" + reason + "-href"));
      if (dialog.hasAttribute("data-" + reason + "-link")) {
        link.textContent = dialog.getAttribute("data-" + reason + "-link");
      }
    } else {
      out.textContent = format(0);
      box.classList.add("is-over");
    }
    // The page behind is inert: its forms would only be refused now.
    document.querySelectorAll("main > :not(.overlay), header, footer").forEach(function (el) {
      el.setAttribute("inert", "");
    });
    overlay.hidden = false;
    document.body.classList.add("has-overlay");
    document.getElementById("expired-login").focus();
  }

  tick();
  timers.push(setInterval(tick, 250));
  timers.push(setInterval(function () { check(false); }, pollMS));
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) check(false);
  });
  window.addEventListener("focus", function () { check(false); });
})();
