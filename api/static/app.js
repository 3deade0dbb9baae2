/* Shared page helpers: CSRF-carrying fetch, polling, copy buttons. No dependencies. */
(function () {
  "use strict";
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }
  async function send(method, url, body) {
    var headers = { "X-CSRF-Token": csrf(), "X-Requested-With": "fetch", "Accept": "application/json" };
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    var res = await fetch(url, init);
    var data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      var err = new Error((data && (data.detail || data.title)) || ("HTTP " + res.status));
      err.status = res.status; err.problem = data; throw err;
    }
    return data;
  }
  /* Calls fn(data) every `ms` until it returns true; backs off when the tab is hidden. */
  function poll(url, fn, ms) {
    var stopped = false;
    async function tick() {
      if (stopped) return;
      try {
        var res = await fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" });
        if (res.ok && fn(await res.json()) === true) { stopped = true; return; }
      } catch (e) { /* network blip: try again */ }
      setTimeout(tick, document.hidden ? ms * 4 : ms);
    }
    setTimeout(tick, ms);
    return function () { stopped = true; };
  }
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-copy]");
    if (!btn) return;
    var text = btn.getAttribute("data-copy");
    var done = function () {
      var old = btn.textContent; btn.textContent = btn.getAttribute("data-copied") || "✓";
      setTimeout(function () { btn.textContent = old; }, 1500);
    };
    if (navigator.clipboard) { navigator.clipboard.writeText(text).then(done, done); } else { done(); }
  });
  window.motcua = { csrf: csrf, get: function (u) { return send("GET", u); },
    post: function (u, b) { return send("POST", u, b === undefined ? {} : b); }, poll: poll };
})();
