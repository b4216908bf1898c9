// The few behaviours of our own. Everything works without this file; it only adds comfort.
(function () {
  "use strict";

  // Close an open <details> menu on Escape or on a click outside it.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });

  // Forms with data-confirm ask first; without JavaScript they submit directly and the
  // server-side confirmation page (where there is one) takes over.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // Copy buttons: <button data-copy="#element-id">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    navigator.clipboard.writeText(text.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.setAttribute("data-copied", "");
      setTimeout(function () { button.textContent = label; button.removeAttribute("data-copied"); }, 2000);
    });
  });
})();

// A newly shown key: move focus to its panel and select the key for copying.
(function () {
  "use strict";
  function focusNew(root) {
    var panel = root.querySelector && root.querySelector("[data-autofocus]");
    if (panel) panel.focus();
  }
  document.addEventListener("DOMContentLoaded", function () { focusNew(document); });
  document.addEventListener("htmx:afterSwap", function (event) { focusNew(document); });
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("[data-select-on-focus]")) event.target.select();
  });
})();

// <time data-countdown datetime="…">: "in 3 hours, 12 minutes", kept current each minute
// (a rolled key's old secret), and "now" once it has passed.
(function () {
  function phrase(ms) {
    if (ms <= 0) return "now";
    var minutes = Math.ceil(ms / 60000);
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60, parts = [];
    if (days) parts.push(days + (days === 1 ? " day" : " days"));
    if (hours) parts.push(hours + (hours === 1 ? " hour" : " hours"));
    if (!days && mins) parts.push(mins + (mins === 1 ? " minute" : " minutes"));
    return "in " + parts.slice(0, 2).join(", ");
  }
  function tick() {
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = phrase(at - Date.now());
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  setInterval(tick, 30000);
})();
