// The live roster: Server-Sent Events from the server replace the roster in place, without a reload.
// The browser reconnects by itself after a drop; the server then sends the whole roster again, so
// nothing missed stays missing. If the browser gives up (it closed the stream), we open a new one,
// unless central answers that the login has ended (see check()).
(function () {
  var box = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!box || !window.EventSource) return;
  var src = box.getAttribute("data-src");
  var source = null;
  function show(ok) {
    state.className = "live " + (ok ? "ok" : "lost");
    state.textContent = state.getAttribute(ok ? "data-ok" : "data-lost");
  }
  function keepTyping() {
    // Someone typing an excuse note: keep their text across an update.
    var typed = {};
    box.querySelectorAll("form.excuse").forEach(function (f) {
      var note = f.querySelector("input[name=note]");
      if (note && note.value) typed[f.querySelector("input[name=student]").value] = note.value;
    });
    return typed;
  }
  function open() {
    source = new EventSource(src);
    source.addEventListener("open", function () { show(true); });
    source.addEventListener("roster", function (e) {
      var typed = keepTyping();
      box.innerHTML = JSON.parse(e.data).html;
      Object.keys(typed).forEach(function (student) {
        var input = box.querySelector("form.excuse input[name=student][value='" + student + "']");
        if (input) input.parentNode.querySelector("input[name=note]").value = typed[student];
      });
      box.setAttribute("data-updated", String(Date.now()));
      show(true);
    });
    source.addEventListener("logout", function () {
      // The login ended. Reload, as check() does: the page itself then sends to /login with this page (path
      // and query) as `next`, one rule for both ways of finding out; or, logged in again in another tab
      // meanwhile, it simply shows again.
      source.close();
      window.location.reload();
    });
    source.addEventListener("error", function () {
      show(false);
      if (source.readyState === EventSource.CLOSED) { check(); }
    });
  }
  function check() {
    // The browser gave up: central answered the stream with no stream. If the login ended while the
    // stream was down (so no `logout` reached this page), that answer is a redirect to /login; a role
    // or school no longer this login's is a 403 or 404. Ask once: then reload, and the page itself
    // sends to /login (with this page as `next`) or says why; else (central away, or busy) retry.
    var stop = window.AbortController ? new AbortController() : null;
    fetch(src, {cache: "no-store", headers: {Accept: "text/event-stream"}, signal: stop ? stop.signal : undefined})
      .then(function (r) {
        if (stop) stop.abort();  // a stream that did open is not read here: the EventSource opens its own
        if (r.redirected || (r.status >= 400 && r.status < 500)) { window.location.reload(); }
        else { setTimeout(open, 1000); }
      }, function () { setTimeout(open, 1000); });
  }
  open();
})();
