/* Citizen portal: pay-page polling, catalogue filter, receipt verification, QR scanning.
   No dependencies; each part runs only when its element is on the page. */
(function () {
  "use strict";

  /* ---- pay page: poll /pay/{id}/status and reload when the status or the receipt changes.
     Bounded: stops after MAX_POLLS (about an hour at 2 s) and asks for a manual reload. */
  var pay = document.getElementById("pay");
  if (pay && pay.dataset.poll && window.motcua) {
    var MAX_POLLS = 1800;
    var polls = 0;
    var before = pay.dataset.status;
    var hadReceipt = pay.dataset.hasReceipt === "yes";
    window.motcua.poll("/pay/" + encodeURIComponent(pay.dataset.order) + "/status", function (s) {
      polls += 1;
      if (s.status !== before || (!!s.receipt) !== hadReceipt) {
        window.location.reload();
        return true;
      }
      if (polls >= MAX_POLLS) {
        var w = document.getElementById("waiting");
        if (w) w.textContent = "Tải lại trang để cập nhật tình trạng. / Reload the page to refresh the status.";
        return true;
      }
      return false;
    }, parseInt(pay.dataset.poll, 10) || 2000);
  }

  /* ---- print buttons */
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });

  /* ---- fee catalogue: instant filter, folded like the server's (case and accents ignored) */
  function fold(text) {
    return text.replace(/đ/g, "d").replace(/Đ/g, "D").normalize("NFD")
      .replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }
  var search = document.querySelector("input[data-filter]");
  if (search) {
    var items = document.querySelectorAll(search.dataset.filter);
    var shown = document.getElementById("shown");
    var none = document.getElementById("no-match");
    search.addEventListener("input", function () {
      var needle = fold(search.value.trim());
      var count = 0;
      items.forEach(function (item) {
        var hit = !needle || (item.dataset.search || "").indexOf(needle) !== -1;
        item.hidden = !hit;
        if (hit) count += 1;
      });
      if (shown) shown.textContent = String(count);
      if (none) none.hidden = count !== 0;
    });
  }

  /* ---- verification upload (POST /api/v1/verify) */
  var form = document.getElementById("verify-form");
  var out = document.getElementById("verify-result");
  var STATUS = {
    valid: ["Còn hiệu lực", "In force"],
    replaced: ["Đã được thay thế bằng biên lai khác", "Superseded by another receipt"],
    unknown: ["Chưa xác định", "Unknown to this service"]
  };
  function el(tag, cls, vi, en) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (vi) node.appendChild(document.createTextNode(vi));
    if (en) { var s = document.createElement("span"); s.className = "en"; s.lang = "en"; s.textContent = en; node.appendChild(s); }
    return node;
  }
  function row(dl, vi, en, value) {
    if (value === null || value === undefined || value === "") return;
    var dt = el("dt", "", vi + " ");
    var s = document.createElement("span"); s.className = "inline-en"; s.lang = "en"; s.textContent = en;
    dt.appendChild(s);
    dl.appendChild(dt); dl.appendChild(el("dd", "", String(value)));
  }
  function list(items) {
    var ul = el("ul", "problems");
    items.forEach(function (p) { ul.appendChild(el("li", "", p.vi, p.en)); });
    return ul;
  }
  /* "2026-11-21" → "21/11/2026"; "2026-11-21T15:10:11+07:00" → "21/11/2026 15:10:11" */
  function dmy(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}:\d{2}:\d{2}))?/.exec(value || "");
    if (!m) return value;
    return m[3] + "/" + m[2] + "/" + m[1] + (m[4] ? " " + m[4] : "");
  }
  function vnd(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ".") + " đ"; }
  function show(r) {
    out.textContent = "";
    var banner = el("p", "banner " + (r.valid ? "ok" : "bad"),
      r.valid ? "✔ Biên lai hợp lệ" : "✘ Không hợp lệ", r.valid ? "Valid receipt" : "Not valid");
    banner.id = "verify-verdict";
    out.appendChild(banner);
    var dl = el("dl", "result-kv");
    row(dl, "Người ký", "Signed by", r.signer);
    row(dl, "MST trên biên lai", "Tax code", r.tax_code);
    row(dl, "Đơn vị thu", "Collector", r.collector_name);
    row(dl, "Mẫu số – Ký hiệu – Số", "Template – Series – No.", r.template ? [r.template, r.series, r.number].join(" – ") : null);
    row(dl, "Ngày lập", "Date", dmy(r.issued_on));
    row(dl, "Tổng tiền", "Total", typeof r.total === "number" ? vnd(r.total) : null);
    row(dl, "Thời điểm ký", "Signing time", dmy(r.signing_time));
    var st = STATUS[r.status] || STATUS.unknown;
    row(dl, "Tình trạng", "Status", st[0] + " / " + st[1]);
    out.appendChild(dl);
    if (r.replaced_by) {
      var p = el("p", "", "Biên lai thay thế: "); var a = document.createElement("a");
      a.href = r.replaced_by.verify_url; a.textContent = "số " + r.replaced_by.number + " (" + r.replaced_by.series + ")";
      p.appendChild(a); out.appendChild(p);
    }
    if (r.problem_details && r.problem_details.length) out.appendChild(list(r.problem_details));
    if (r.warnings && r.warnings.length) { var w = list(r.warnings); w.classList.add("warn"); out.appendChild(w); }
  }
  if (form && out) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = document.getElementById("verify-file");
      if (!input.files.length) return;
      if (input.files[0].size > 5 * 1024 * 1024) {
        out.textContent = ""; out.appendChild(el("p", "banner bad", "Tệp lớn hơn 5 MB", "The file is larger than 5 MB")); return;
      }
      out.textContent = "Đang kiểm tra… / Verifying…";
      fetch(form.action, { method: "POST", body: new FormData(form), headers: { "Accept": "application/json" } })
        .then(function (res) { return res.json().then(function (body) { return [res.ok, body]; }); })
        .then(function (pair) {
          if (pair[0]) { show(pair[1]); return; }
          out.textContent = "";
          out.appendChild(el("p", "banner bad", pair[1].title || "Lỗi", pair[1].title_en || pair[1].detail || "Error"));
        })
        .catch(function () { out.textContent = "Không gửi được tệp; vui lòng thử lại. / Could not send the file; please retry."; });
    });
  }

  /* ---- QR scanning: BarcodeDetector + camera; only /r/... URLs of this site are followed. */
  var scan = document.getElementById("scan-qr");
  var msg = document.getElementById("scan-message");
  var video = document.getElementById("scan-video");
  function say(key, extra) { if (msg) msg.textContent = (msg.dataset[key] || "") + (extra ? " " + extra : ""); }
  /* The receipt page a scanned text points to, or null when it is not one of ours. */
  function ourReceiptUrl(text) {
    var url;
    try { url = new URL(text, window.location.href); } catch (e) { return null; }
    if (url.origin !== window.location.origin) return null;
    if (!/^\/r\/[A-Z2-7]{8,32}$/.test(url.pathname)) return null;
    return url.pathname;
  }
  window.motcuaPortal = { ourReceiptUrl: ourReceiptUrl, fold: fold };
  if (scan) {
    var supported = "BarcodeDetector" in window && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
    scan.addEventListener("click", function () {
      if (!supported) { say("unsupported"); return; }
      var stream = null;
      var detector;
      try { detector = new window.BarcodeDetector({ formats: ["qr_code"] }); } catch (e) { say("unsupported"); return; }
      var deadline = Date.now() + 60000;  // at most one minute of scanning per press
      function stop() {
        if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
        video.hidden = true; scan.disabled = false;
      }
      function tick() {
        if (Date.now() > deadline) { stop(); say("timeout"); return; }
        detector.detect(video).then(function (codes) {
          for (var i = 0; i < codes.length; i++) {
            var target = ourReceiptUrl(codes[i].rawValue);
            if (target) { stop(); window.location.assign(target); return; }
            if (codes[i].rawValue) { stop(); say("foreign", codes[i].rawValue.slice(0, 80)); return; }
          }
          setTimeout(tick, 250);
        }, function () { setTimeout(tick, 500); });
      }
      scan.disabled = true;
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
        .then(function (s) {
          stream = s; video.srcObject = s; video.hidden = false;
          return video.play();
        })
        .then(function () { say("scanning"); tick(); })
        .catch(function () { stop(); say("denied"); });
    });
  }
})();
