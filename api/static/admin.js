/* Agency admin pages: confirm destructive actions and never submit a form twice (a second
   "create API client" would mint a second key). Plain HTML forms work without this file. */
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); return; }
    if (form.hasAttribute("data-once")) {
      if (form.getAttribute("data-sent") === "1") { ev.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
      var buttons = form.querySelectorAll("button[type=submit]");
      for (var i = 0; i < buttons.length; i++) { buttons[i].setAttribute("aria-disabled", "true"); }
    }
  });
  /* Leaving the "shown once" page by Back must not show the secret again from the cache. */
  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted && document.querySelector("[data-secret]")) { window.location.reload(); }
  });
})();
