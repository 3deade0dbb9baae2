/* Counter screen (issue 6 item 2): live total, procedure picker, live payment status,
   confirm dialogs, printing. Plain script on top of app.js (window.motcua); no dependencies.
   Every figure shown here is a preview or a copy: the server recomputes and decides. */
(function () {
  "use strict";
  var lang = document.documentElement.lang === "en" ? "en" : "vi";
  var MAX_TICKS = 2400; /* ~1 h at 1.5 s: the poll is bounded, then the page asks for a reload */

  function vnd(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ".") + " đ"; }

  /* --- confirm dialogs and one submit per click ------------------------------------ */
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form || !form.getAttribute) return;
    var msg = form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); return; }
    if ((form.getAttribute("method") || "get").toLowerCase() === "post") {
      var btn = form.querySelector("button[type=submit]");
      /* after the submit has started, so the button's own value is still sent */
      if (btn) { setTimeout(function () { btn.disabled = true; }, 0); }
    }
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form button[type=submit][disabled]").forEach(function (b) { b.disabled = false; });
  });
  document.addEventListener("click", function (ev) {
    var p = ev.target.closest && ev.target.closest("[data-print]");
    if (p) { window.print(); }
  });

  /* --- new order: live total and procedure picker ----------------------------------- */
  /* The server prices the lines (GET data-price-url, the same function as the order): no
     arithmetic here. Only the fee-line fields are sent, never the payer's details. */
  var priceTimer = null;
  var priceSeq = 0;
  function recompute(form) {
    if (priceTimer) { clearTimeout(priceTimer); }
    priceTimer = setTimeout(function () { priceNow(form); }, 150);
  }
  async function priceNow(form) {
    var url = form.getAttribute("data-price-url");
    if (!url || !form.querySelector("tr[data-line]")) { return; }
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (name === "procedure_code" || name.indexOf("line-") === 0) { params.append(name, value); }
    });
    var seq = ++priceSeq;
    try {
      var res = await fetch(url + "?" + params.toString(),
        { credentials: "same-origin", headers: { "Accept": "application/json", "X-Requested-With": "fetch" } });
      if (!res.ok || seq !== priceSeq) { return; }
      var data = await res.json();
      data.lines.forEach(function (line) {
        var row = form.querySelector('tr[data-line][data-index="' + line.index + '"]');
        if (!row) { return; }
        var cell = row.querySelector("[data-line-amount]");
        if (cell) { cell.textContent = line.amount_text; }
        var how = row.querySelector("[data-line-breakdown]");
        if (how) { how.textContent = line.breakdown ? line.breakdown[lang] : ""; }
        var err = row.querySelector("[data-line-error]");
        if (err) { err.textContent = line.error || ""; }
      });
      var out = document.getElementById("total");
      if (out) { out.textContent = data.total_text; }
    } catch (e) { /* the figures stay as last priced; the server decides on submit */ }
  }

  var orderForm = document.getElementById("order-form");
  var pickForm = document.getElementById("pick-form");
  if (orderForm) {
    orderForm.addEventListener("input", function () { recompute(orderForm); });
    orderForm.addEventListener("change", function () { recompute(orderForm); });
    recompute(orderForm);
  }
  if (orderForm && pickForm) {
    var input = document.getElementById("procedure");
    var lines = document.getElementById("lines");
    var codes = {};
    document.querySelectorAll("#procedure-list option").forEach(function (o) { codes[o.value] = true; });
    var loaded = null;
    var load = async function (value) {
      value = (value || "").trim();
      if (!value || value === loaded) { return; }
      loaded = value;
      try {
        var res = await fetch(orderForm.getAttribute("data-lines-url") + "?procedure=" + encodeURIComponent(value),
          { credentials: "same-origin", headers: { "Accept": "text/html", "X-Requested-With": "fetch" } });
        if (!res.ok) { loaded = null; return; }
        lines.innerHTML = await res.text();
        recompute(orderForm);
        if (window.history && history.replaceState) {
          history.replaceState(null, "", "/staff/counter/new?procedure=" + encodeURIComponent(value));
        }
      } catch (e) { loaded = null; }
    };
    input.addEventListener("input", function () { if (codes[input.value.trim()]) { load(input.value); } });
    input.addEventListener("change", function () { load(input.value); });
    pickForm.addEventListener("submit", function (ev) { ev.preventDefault(); loaded = null; load(input.value); });
    lines.addEventListener("click", function (ev) {
      var a = ev.target.closest && ev.target.closest("[data-pick]");
      if (a) { ev.preventDefault(); input.value = a.getAttribute("data-pick"); load(input.value); }
    });
  }

  /* --- order page and second screen: the payment arrives by itself ------------------ */
  function show(id, visible) { var el = document.getElementById(id); if (el) { el.hidden = !visible; } }

  function apply(s) {
    var badge = document.getElementById("status-badge");
    if (badge) {
      badge.textContent = lang === "en" ? s.label_en : s.label_vi;
      badge.className = badge.className.replace(/\bbadge-(ok|bad|warn)\b/g, "").trim() + " " + s.badge;
    }
    if (s.status === "pending") { return; }
    if (!s.paid) { window.location.reload(); return; } /* cancelled, expired: show the server's page */
    show("pay-panel", false);
    show("actions", false);
    show("paid-panel", true);
    var m = document.querySelector("[data-paid-method]");
    if (m && s.method_vi) { m.textContent = "– " + (lang === "en" ? s.method_en : s.method_vi); }
    if (!s.receipt) { return; }
    document.querySelectorAll("[data-receipt-label]").forEach(function (el) { el.textContent = s.receipt.label; });
    document.querySelectorAll("[data-receipt-pdf]").forEach(function (el) { el.setAttribute("href", s.receipt.pdf_url); });
    document.querySelectorAll("[data-receipt-href]").forEach(function (el) {
      el.setAttribute("href", el.getAttribute("data-receipt-href").replace("{id}", s.receipt.id));
    });
    show("receipt-line", true);
    show("receipt-wait", false);
    show("receipt-actions", true);
  }

  var live = document.getElementById("counter-live");
  if (live && window.motcua) {
    var status = live.getAttribute("data-status");
    var hasReceipt = live.getAttribute("data-has-receipt") === "yes";
    if (status === "pending" || (status === "succeeded" && !hasReceipt)) {
      var ticks = 0;
      window.motcua.poll(live.getAttribute("data-status-url"), function (s) {
        ticks += 1;
        apply(s);
        var settled = s.status !== "pending" && (!s.paid || s.receipt);
        return Boolean(settled) || ticks >= MAX_TICKS;
      }, parseInt(live.getAttribute("data-poll-ms"), 10) || 1500);
    }
  }
})();
