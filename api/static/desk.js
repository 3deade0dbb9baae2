/* Accountant desk: small progressive enhancements; every form works without this file. */
(function () {
  "use strict";
  /* A form marked data-once cannot be sent twice by a double click (a close or an approval). */
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute || !form.hasAttribute("data-once")) return;
    if (form.getAttribute("data-sent") === "1") { ev.preventDefault(); return; }
    form.setAttribute("data-sent", "1");
    var btn = form.querySelector("button[type=submit]");
    if (btn) { btn.setAttribute("aria-busy", "true"); }
  });
  /* Suggestion buttons fill the order field they name. */
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-fill]");
    if (!btn) return;
    var input = document.querySelector(btn.getAttribute("data-fill"));
    if (input) { input.value = btn.getAttribute("data-value") || ""; input.focus(); }
  });
  /* The correction form shows only the fields its chosen action uses. */
  function toggle(select) {
    var form = select.form;
    form.querySelectorAll("[data-param]").forEach(function (el) {
      var on = el.getAttribute("data-param") === select.value;
      el.hidden = !on;
      el.querySelectorAll("input").forEach(function (i) { i.required = on && i.name === "order"; });
    });
  }
  document.querySelectorAll("select[data-toggle-params]").forEach(function (select) {
    toggle(select);
    select.addEventListener("change", function () { toggle(select); });
  });
})();
