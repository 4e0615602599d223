// Rollouts dashboard: actions with the page's CSRF token; on a watch stream update, the page
// is fetched again and its `data-live` parts swapped in (no reload, so an input being typed
// into keeps its text); the list's filters live in the URL. No framework, no inline script
// (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var meta = function (name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") : "";
  };

  // Sends an action; a refused one is shown with the server's message.
  var send = function (url, body, button) {
    button.disabled = true;
    return fetch(url, {
      method: "PUT",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": meta("csrf-token") },
      body: body,
      credentials: "same-origin",
    })
      .then(function (r) {
        if (r.ok) { refresh(); return true; }
        return r.json().then(function (e) { window.alert(e.message || r.statusText); return false; });
      })
      .catch(function (e) { window.alert(String(e)); return false; })
      .then(function (ok) { button.disabled = false; return ok; });
  };

  // `registry:5000/team/app:v2` → `…/set/<container>/registry:5000/team/app/v2` (Argo's path:
  // the image with its slashes, then the tag as the last segment).
  var setImagePath = function (base, value) {
    if (value.indexOf("@") >= 0) return null;
    var slash = value.lastIndexOf("/");
    var colon = value.lastIndexOf(":");
    var image = value;
    var tag = "latest";
    if (colon > slash) { image = value.slice(0, colon); tag = value.slice(colon + 1); }
    if (!image || !tag) return null;
    return base + "/" + image.split("/").map(encodeURIComponent).join("/") + "/" + encodeURIComponent(tag);
  };

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (button) {
      var question = button.getAttribute("data-confirm");
      if (question && !window.confirm(question)) return;
      send(button.getAttribute("data-action"), button.getAttribute("data-body") || "{}", button);
      return;
    }
    var setter = event.target.closest("button[data-set-image]");
    if (setter) {
      var input = document.getElementById(setter.getAttribute("data-input"));
      var value = input ? input.value.trim() : "";
      var url = setImagePath(setter.getAttribute("data-set-image"), value);
      if (!url) {
        window.alert("Enter an image as name[:tag], e.g. nginx:1.27 (a digest cannot be set from here)");
        return;
      }
      send(url, "{}", setter).then(function (ok) { if (ok && input) input.value = ""; });
    }
  });

  // Fetches the page at its current URL and swaps in every `data-live` element by id. One
  // fetch at a time; updates meanwhile fold into one more.
  var busy = false;
  var again = false;
  var refresh = function () {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        fresh.querySelectorAll("[data-live][id]").forEach(function (el) {
          var old = document.getElementById(el.id);
          if (old && old.outerHTML !== el.outerHTML) old.replaceWith(document.importNode(el, true));
        });
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  };

  // The list's filters: every change goes into the URL (so a reload or a link shows the same);
  // a new namespace is a new page (its own watch stream), the rest a refresh.
  var filters = document.getElementById("filters");
  if (filters) {
    var timer = null;
    var shownNamespace = filters.elements.namespace ? filters.elements.namespace.value : "";
    var apply = function (navigate) {
      var params = new URLSearchParams();
      new FormData(filters).forEach(function (value, key) {
        if (String(value) !== "") params.append(key, String(value));
      });
      var url = filters.getAttribute("action") + "?" + params.toString();
      if (navigate) { window.location.assign(url); return; }
      window.history.replaceState(null, "", url);
      refresh();
    };
    filters.addEventListener("submit", function (event) {
      event.preventDefault();
      apply(filters.elements.namespace && filters.elements.namespace.value !== shownNamespace);
    });
    filters.addEventListener("change", function (event) {
      if (event.target.hasAttribute("data-navigate")) { apply(true); return; }
      if (event.target.type !== "search") apply(false);
    });
    filters.addEventListener("input", function (event) {
      if (event.target.type !== "search") return;
      clearTimeout(timer);
      timer = setTimeout(function () { apply(false); }, 250);
    });
  }

  var watch = meta("watch");
  if (watch && window.EventSource) {
    var pending = null;
    var source = new EventSource(watch);
    source.onmessage = function () {
      if (pending) return;
      pending = setTimeout(function () { pending = null; refresh(); }, 200);
    };
  }
})();
