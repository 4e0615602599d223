// Rollouts dashboard: actions with the page's CSRF token, and a reload when the watch stream
// reports a change. No framework, no inline script (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var meta = function (name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") : "";
  };
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) return;
    var question = button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) return;
    button.disabled = true;
    fetch(button.getAttribute("data-action"), {
      method: "PUT",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": meta("csrf-token") },
      body: button.getAttribute("data-body") || "{}",
      credentials: "same-origin",
    })
      .then(function (r) {
        return r.ok ? null : r.json().then(function (e) { window.alert(e.message || r.statusText); });
      })
      .catch(function (e) { window.alert(String(e)); })
      .then(function () { button.disabled = false; });
  });
  var watch = meta("watch");
  if (watch && window.EventSource) {
    var first = true;
    var pending = null;
    var source = new EventSource(watch);
    source.onmessage = function () {
      // The first message is the state the page was rendered from.
      if (first) { first = false; return; }
      if (pending) return;
      pending = setTimeout(function () { window.location.reload(); }, 500);
    };
  }
})();
