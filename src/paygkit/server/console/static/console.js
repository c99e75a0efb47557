/* paygkit console: small progressive enhancements; every page works without it. */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on another address: no Clipboard API; the old way still works.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (button) {
      var status = button.parentNode.querySelector(".copy-status");
      copyText(button.getAttribute("data-copy")).then(function () {
        button.textContent = "Copied";
        if (status) { status.textContent = "Copied to the clipboard"; }
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      }, function () {
        if (status) { status.textContent = "Could not copy: select the text and copy it by hand"; }
      });
      return;
    }
    if (event.target.closest("button[data-print]")) {
      window.print();
      return;
    }
    var back = event.target.closest("a[data-back]");
    if (back && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });

  // A confirmation is sent once: a second click would only show the same token again.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-once")) { return; }
    if (form.getAttribute("data-sent") === "1") { event.preventDefault(); return; }
    form.setAttribute("data-sent", "1");
    var button = form.querySelector("button[type=submit]");
    if (button) { button.setAttribute("aria-disabled", "true"); button.classList.add("busy"); }
  });
})();
