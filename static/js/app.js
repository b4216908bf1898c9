// The few behaviours of our own. Everything works without this file; it only adds comfort.

// What a screen reader should hear of a change the eye sees (a list updated, a secret
// copied): one polite live region for the page, made on first use. Emptied first, so the
// same words said twice are heard twice.
var announce = (function () {
  "use strict";
  var announcer = null;
  return function (text) {
    if (!announcer) {
      announcer = document.createElement("div");
      announcer.className = "visually-hidden";
      announcer.setAttribute("aria-live", "polite");
      announcer.id = "announcer";
      announcer.setAttribute("role", "status");
      document.body.appendChild(announcer);
    }
    announcer.textContent = "";
    setTimeout(function () { announcer.textContent = text; }, 50);
  };
})();

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

  // ...and when focus moves out of it (Tab past its last item).
  document.addEventListener("focusout", function (event) {
    var menu = event.target.closest && event.target.closest("details[data-menu][open]");
    if (menu && event.relatedTarget && !menu.contains(event.relatedTarget)) {
      menu.removeAttribute("open");
    }
  });

  // Forms with data-confirm (and htmx's hx-confirm) ask first, in a dialog of our own:
  // the question, Cancel (focused: Enter or Escape changes nothing) and a button named
  // after the action ("Remove", "Turn off"). Without JavaScript they submit directly and
  // the server-side confirmation page (where there is one) takes over.
  function ask(question, action, then) {
    var dialog = document.createElement("dialog");
    dialog.className = "panel-dialog confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-question");
    var box = document.createElement("form");
    box.method = "dialog";
    box.className = "card panel";
    var text = document.createElement("p");
    text.id = "confirm-question";
    text.textContent = question;
    var actions = document.createElement("div");
    actions.className = "form-actions";
    var cancel = document.createElement("button");
    cancel.className = "button";
    cancel.value = "cancel";
    cancel.textContent = "Cancel";
    var go = document.createElement("button");
    go.className = "button button-danger";
    go.value = "confirm";
    go.textContent = action || "Confirm";
    actions.append(go, cancel);
    box.append(text, actions);
    dialog.append(box);
    document.body.append(dialog);
    dialog.addEventListener("close", function () {
      var confirmed = dialog.returnValue === "confirm";
      dialog.remove();
      if (confirmed) then();
    });
    dialog.showModal();
    cancel.focus();
  }

  function firstButton(form) {
    return form.querySelector("button:not([type=button]):not([type=reset]), input[type=submit]");
  }

  function actionName(button) {
    if (!button) return "";
    var copy = button.cloneNode(true);  // its visible words, not the screen-reader extras
    copy.querySelectorAll(".visually-hidden").forEach(function (hidden) { hidden.remove(); });
    return copy.textContent.trim();
  }

  // A data-send-once form already on its way (below) sends nothing more, and asks nothing.
  document.addEventListener("submit", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-sending")) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (!question) return;
    if (form.hasAttribute("data-confirmed")) {  // asked already: this is the real send
      form.removeAttribute("data-confirmed");
      return;
    }
    event.preventDefault();
    var submitter = event.submitter || firstButton(form);
    ask(question, actionName(submitter), function () {
      form.setAttribute("data-confirmed", "");
      form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
    });
  }, true);

  // A plain form that makes a secret (data-send-once) is sent once: once it is on its way
  // its buttons say they are disabled (aria-disabled) and any further submit is cancelled
  // (the listener above), so a double click sends it once. The server makes it once anyway
  // (core/shown_once.py), but the browser shows the second answer, which can only say the
  // secret was shown in the first. htmx's forms do the same by hx-disabled-elt. Not the
  // disabled property: a focused button that is disabled loses focus to the body, so a
  // keyboard user starts again from the top; and a disabled button is left out of the
  // send, so this comes after data-confirm's question (whose first submit it cancels).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.hasAttribute || !form.hasAttribute("data-send-once")) return;
    form.setAttribute("data-sending", "");
    form.querySelectorAll("button:not([type=button])").forEach(function (button) {
      button.setAttribute("aria-disabled", "true");
    });
    // A browser without the Navigation API says nothing when the send is stopped: after a
    // while the form works again (a second send then is meant, not a double click).
    if (!window.navigation) setTimeout(function () { sendAgain(form); }, 8000);
  });
  function sendAgain(form) {
    form.removeAttribute("data-sending");
    form.querySelectorAll("button[aria-disabled=true]").forEach(function (button) {
      button.removeAttribute("aria-disabled");
    });
  }
  function sendAllAgain() {
    document.querySelectorAll("form[data-sending]").forEach(sendAgain);
  }
  // The send stopped (Esc, the browser's Stop, another navigation in its place) with the
  // page still here: the form works again.
  if (window.navigation) window.navigation.addEventListener("navigateerror", sendAllAgain);
  // Back to the page from the browser's cache, with the form still there: it works again
  // (sent, it says it was already sent).
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) sendAllAgain();
  });

  document.addEventListener("htmx:confirm", function (event) {
    var question = event.detail.question;
    if (!question) return;
    event.preventDefault();
    var elt = event.detail.elt;
    ask(question, actionName(elt.matches("form") ? firstButton(elt) : elt), function () {
      event.detail.issueRequest(true);
    });
  });

  // Copy buttons: <button data-copy="#element-id">. Done is said as well as shown (the
  // button's new label alone is not read by every screen reader); refused (a browser or
  // policy that keeps scripts from the clipboard, or no clipboard at all over plain
  // http), the text is selected for Ctrl+C and that is said instead of nothing happening.
  function copied(button) {
    var label = button.textContent;
    button.textContent = "Copied";
    button.setAttribute("data-copied", "");
    announce("Copied to the clipboard.");
    setTimeout(function () { button.textContent = label; button.removeAttribute("data-copied"); }, 2000);
  }

  function notCopied(source) {
    source.focus();
    if (source.select) source.select();
    announce("Could not copy: the browser refused. It is selected: press Ctrl+C (Command+C on a Mac) to copy it.");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    if (!navigator.clipboard) {
      notCopied(source);
      return;
    }
    navigator.clipboard.writeText(text.trim()).then(
      function () { copied(button); },
      function () { notCopied(source); }
    );
  });
})();

// A newly shown key: move focus to its panel and select the key for copying.
(function () {
  "use strict";
  function focusNew(root) {
    var panel = root.querySelector && root.querySelector("[data-autofocus]");
    // Only once: a later update (the key list reloading after a create) must not pull
    // focus back from the secret or the Copy button to the panel.
    if (panel && !panel.contains(document.activeElement)) panel.focus();
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

// A panel (#key-panel: create, rename, roll, suspend, revoke, allowed networks, a new
// secret) that htmx loads opens as a modal <dialog>, wherever the row that asked for it
// is on the page: focus goes inside (the first field, else the panel itself), Escape and
// Cancel close it, and focus returns to the button that opened it. When the server
// answers with the empty slot (done), the dialog closes the same way. Without JavaScript
// the same panels are pages of their own.
(function () {
  "use strict";
  var opener = null;
  // The opener's address, to find its row again once the list is redrawn after a change,
  // and its place among its row's controls, for when the change replaced it (Suspend
  // became Resume).
  var returnTo = null;
  var returnPlace = 0;
  // The panel focus was last put into: a panel that comes replaces its slot (outerHTML).
  var placed = null;

  function slot() { return document.getElementById("key-panel"); }

  function focusInside(panel) {
    var target = panel.querySelector("[aria-invalid='true']") ||
      panel.querySelector("[data-autofocus]") ||
      panel.querySelector("input:not([type=hidden]):not([type=radio]):not([type=checkbox]), textarea, select");
    if (!target) {
      panel.setAttribute("tabindex", "-1");
      target = panel;
    }
    target.focus();
  }

  // A link's address, or a button's form's (Resume): what the control asked for.
  function addressOf(control) {
    var form = control.closest("form");
    return control.getAttribute("hx-get") || control.getAttribute("href") ||
      (form && (form.getAttribute("hx-post") || form.getAttribute("action"))) || null;
  }

  function remember(control) {
    var address = control && addressOf(control);
    if (address) {
      returnTo = address;
      returnPlace = placeInRow(control);
      setTimeout(function () { returnTo = null; }, 10000);
    }
    return address;
  }

  function unwrap(dialog) {
    var empty = document.createElement("div");
    empty.id = "key-panel";
    dialog.replaceWith(empty);
    var address = remember(opener);
    var again = address && findOpener(address);
    if (opener && document.contains(opener)) {
      opener.focus();
    } else if (again) {
      again.focus();
    } else {
      // For now: the list may still be redrawing, and then focus goes back to the row.
      var heading = document.querySelector("main h1");
      if (heading) {
        heading.setAttribute("tabindex", "-1");
        heading.setAttribute("data-focus-fallback", "");
        heading.focus();
      }
    }
    opener = null;
  }

  // Named and described as the panel in it is, each time a panel comes (create, then
  // the new secret, in one dialog): focus lands on a field inside, and a screen reader
  // says the dialog's name and description with it, not the panel's.
  function nameAsThePanel(dialog, panel) {
    ["aria-labelledby", "aria-describedby"].forEach(function (name) {
      var value = panel.getAttribute(name);
      if (value) dialog.setAttribute(name, value);
      else dialog.removeAttribute(name);
    });
  }

  function close(dialog) {
    if (dialog.open) dialog.close();
    else unwrap(dialog);
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail.target;
    if (target && target.id === "key-panel" && !target.closest("dialog")) {
      var elt = event.detail.elt;
      // A form's request (Resume) was opened by its button, the thing to focus again.
      opener = elt.closest("a, button") || (elt.matches("form") && elt.querySelector("button")) || elt;
    }
    // Slow actions say so: the control that sent the request is busy until the answer.
    event.detail.elt.setAttribute("aria-busy", "true");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    event.detail.elt.removeAttribute("aria-busy");
  });

  var CONTROLS = "a[href], button, summary, input:not([type=hidden]), select, textarea";

  function placeInRow(control) {
    var row = control && control.closest("tr");
    return row ? Array.from(row.querySelectorAll(CONTROLS)).indexOf(control) : 0;
  }

  // The same address, else the same place in the row of the same key or token (its
  // addresses all start /…/api-keys/27/): a Suspend link that became a Resume button,
  // or the row of a revoked key among the ended ones.
  function findOpener(address) {
    var same = document.querySelector("[hx-get='" + CSS.escape(address) + "']");
    if (same) return same;
    var base = address.replace(/[^/]+\/?$/, "");
    if (!/\/\d+\/$/.test(base)) return null;
    var quoted = CSS.escape(base);
    var mark = document.querySelector(
      "main tr [href^='" + quoted + "'], main tr [hx-get^='" + quoted + "'], main tr form[action^='" + quoted + "']");
    if (!mark) return null;
    var controls = mark.closest("tr").querySelectorAll(CONTROLS);
    return controls[Math.min(returnPlace, controls.length - 1)] || null;
  }

  document.addEventListener("htmx:afterSwap", function () {
    // The list was redrawn after the change: back to the same row's button.
    var again = returnTo && findOpener(returnTo);
    if (again && !document.querySelector("dialog.panel-dialog")) {
      var active = document.activeElement;
      var lostFocus = !active || active === document.body || active.hasAttribute("data-focus-fallback");
      if (lostFocus) {
        again.focus();
        returnTo = null;  // used: later updates leave focus where the person put it
      }
    }
    var panel = slot();
    if (!panel) return;
    // Another region updated (the list redrawn after a create): the panel is the one
    // already placed, and focus stays where the person put it (the Copy button).
    if (panel === placed) return;
    placed = panel;
    var dialog = panel.closest("dialog.panel-dialog");
    var isEmpty = !panel.firstElementChild && !panel.textContent.trim();
    if (isEmpty) {
      // Done at once, without a panel (Resume): back to its row once the list is redrawn.
      if (dialog) close(dialog);
      else if (opener) remember(opener);
      if (!dialog) opener = null;
      return;
    }
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.className = "panel-dialog";
      panel.replaceWith(dialog);
      dialog.appendChild(panel);
      dialog.addEventListener("close", function () { unwrap(dialog); });
      dialog.showModal();
    }
    nameAsThePanel(dialog, panel);
    // Bind the panel's form now, so an Enter pressed at once is sent by htmx too.
    if (window.htmx) window.htmx.process(panel);
    focusInside(panel);
  });

  document.addEventListener("click", function (event) {
    var dismiss = event.target.closest("dialog.panel-dialog [data-dismiss]");
    if (!dismiss) return;
    event.preventDefault();
    close(dismiss.closest("dialog"));
  });
})();

// After any other htmx update (a form refused, a filter, a page of results, an
// acknowledgement): if the element that had focus was replaced, focus goes to the first
// field with an error, else to the updated region, and a live region says what happened.
// Focus that is still somewhere is never moved.
(function () {
  "use strict";
  function fieldError(region) {
    var error = region.querySelector(".errorlist");
    return error ? error.textContent.trim() : "check the fields.";
  }

  function updated(region) {
    return nameOf(region) ? nameOf(region) + " updated." : "Updated.";
  }

  function nameOf(region) {
    var heading = region.querySelector("h1, h2, h3, caption");
    return heading ? heading.textContent.trim() : "";
  }

  // A live region speaks only of what changes in it after the page has loaded: the
  // outcome a plain form's page arrived with ("Invitation sent", "Client token … is
  // revoked") sat silent in #messages. Its messages are put back, the same nodes in one
  // step (nothing flickers, and the words are on the page once), just after the load.
  function sayMessages() {
    var messages = document.getElementById("messages");
    if (!messages || !messages.textContent.trim()) return;
    setTimeout(function () { messages.replaceChildren.apply(messages, Array.from(messages.childNodes)); }, 100);
  }

  // A plain form the server refused (not sent by htmx) comes back as a whole page, and
  // focus starts at its top, far from the error: go to the first field in error, unless
  // the page put focus somewhere itself (autofocus). The field's own description (its
  // error, aria-describedby) is read with it.
  document.addEventListener("DOMContentLoaded", function () {
    var active = document.activeElement;
    var focusIsFree = !active || active === document.body;
    var invalid = document.querySelector("main [aria-invalid='true']");
    if (invalid && focusIsFree) {
      invalid.focus();
      return;
    }
    sayMessages();
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    if (document.querySelector("dialog.panel-dialog")) return;
    var old = event.detail.target;
    // A region that reloads itself on a timer (data-quiet-refresh) neither takes focus
    // nor scrolls the page nor speaks: no one asked for that update.
    if (old && old.hasAttribute && old.hasAttribute("data-quiet-refresh")) return;
    var region = (old && old.id && document.getElementById(old.id)) || old;
    if (!region || !document.contains(region)) return;
    var lost = !document.activeElement || document.activeElement === document.body;
    if (!lost) {
      // Focus stayed (on the Filter button, say): only say what changed, if a person asked.
      var cause = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
      if (cause && (cause.type === "submit" || cause.type === "click")) {
        var problem = region.querySelector("[aria-invalid='true']");
        if (problem) problem.focus();
        if (problem) announce("There is a problem: " + fieldError(region));
        else if (!messagesSpoke) announce(updated(region));
      }
      return;
    }
    var invalid = region.querySelector("[aria-invalid='true']");
    if (invalid) {
      invalid.focus();
      announce("There is a problem: " + fieldError(region));
      return;
    }
    if (!region.hasAttribute("tabindex")) region.setAttribute("tabindex", "-1");
    region.focus({ preventScroll: false });
    if (!messagesSpoke) announce(updated(region));
  });

  // #messages is a live region of its own: when an answer brings it something to say
  // ("“Old” is revoked"), that is the news. A bare "Updated." said at the same moment was
  // all that some screen readers kept of the two.
  var messagesSpoke = false;
  document.addEventListener("htmx:beforeRequest", function () { messagesSpoke = false; });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var swapped = event.target;  // the new #messages (event.detail.target is the old one)
    if (swapped.id === "messages" && swapped.textContent.trim()) messagesSpoke = true;
  });
  // A region that reloads itself on a timer (data-quiet-refresh, with hx-get and
  // hx-trigger="every …"): the webhook delivery log while something is queued.
  // - Its updates take no focus and do not scroll (see above). While focus is inside it
  //   (a keyboard user on Retry now), an update waits for the next tick rather than pull
  //   the focused button out from under them.
  // - It speaks only when a row it showed as waiting (data-waiting) has an outcome:
  //   "evt_…: delivered".
  // - An answer that is not the region itself (an error, the endpoint deleted meanwhile,
  //   the sign-in page after the session ended) is never swapped in: the region stops
  //   reloading and says so, and keeps what it showed.
  function pathOf(address) {
    try { return new URL(address, window.location.href).pathname; } catch (e) { return ""; }
  }

  function stopReloading(region) {
    var still = region.cloneNode(true);
    ["hx-get", "hx-trigger", "hx-target", "hx-swap", "data-quiet-refresh"].forEach(function (name) {
      still.removeAttribute(name);
    });
    var note = document.createElement("p");
    note.className = "muted small";
    note.textContent = "This log stopped updating. Reload the page to see where deliveries stand.";
    var heading = still.querySelector("h2");
    if (heading) heading.insertAdjacentElement("afterend", note); else still.prepend(note);
    region.replaceWith(still);  // htmx stops polling an element that left the page
  }

  function outcomes(region, answer) {
    var now = new DOMParser().parseFromString(answer, "text/html");
    var said = [];
    region.querySelectorAll("[data-event][data-waiting]").forEach(function (row) {
      var event = row.getAttribute("data-event");
      var after = now.querySelector("[data-event='" + CSS.escape(event) + "']");
      if (after && !after.hasAttribute("data-waiting")) {
        said.push(event + ": " + (after.getAttribute("data-outcome") || "done"));
      }
    });
    return said.join(". ");
  }

  // Its requests say they are one (X-Background-Refresh): a session that ended meanwhile
  // then answers with the sign-in redirect as it is (handled below), instead of taking
  // the whole page to sign in when nobody clicked anything (accounts.middleware).
  document.addEventListener("htmx:configRequest", function (event) {
    var region = event.detail.elt;
    if (region && region.hasAttribute && region.hasAttribute("data-quiet-refresh")) {
      event.detail.headers["X-Background-Refresh"] = "true";
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var region = event.detail.elt;
    if (!region || !region.hasAttribute || !region.hasAttribute("data-quiet-refresh")) return;
    var xhr = event.detail.xhr;
    if (xhr.status !== 200 || pathOf(xhr.responseURL) !== pathOf(region.getAttribute("hx-get") || "")) {
      event.detail.shouldSwap = false;
      event.detail.isError = false;
      stopReloading(region);
      return;
    }
    if (region.contains(document.activeElement)) {
      event.detail.shouldSwap = false;
      return;
    }
    var news = outcomes(region, event.detail.serverResponse);
    if (news) announce(news);
  });
})();


// An htmx request the server refused or could not answer (403, 404, 500, 503: anything
// but the 422 of a form with errors or the 409 of one whose thing changed meanwhile,
// which are swapped in beside its fields or in its place), or one that
// never reached it: nothing is swapped, so without this the click would seem to do
// nothing. An alert says what the server's error page says ("Busy for a moment: … try
// again"), where the person is looking: in the open dialog, else at the top of the page.
// It goes away with the next answer that is not an error.
(function () {
  "use strict";
  var OFFLINE = "The dashboard could not be reached. Check your connection and reload the " +
    "page; if you were saving something, check whether it is there before you send it again.";

  function whatTheServerSaid(xhr) {
    var page = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var heading = page.querySelector("main h1, h1");
    var text = page.querySelector("main p, p");
    var said = [heading && heading.textContent.trim(), text && text.textContent.trim()].filter(Boolean);
    if (said.length) return said.join(". ");
    return "The dashboard answered with an error (" + xhr.status + "). Reload the page and try again.";
  }

  function clear() {
    document.querySelectorAll("[data-request-error]").forEach(function (old) { old.remove(); });
  }

  function show(message) {
    clear();
    var alert = document.createElement("div");
    alert.className = "message message-error request-error";
    alert.setAttribute("role", "alert");
    alert.setAttribute("data-request-error", "");
    var text = document.createElement("p");
    text.textContent = message;
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "button button-small";
    dismiss.textContent = "Dismiss";
    dismiss.addEventListener("click", clear);
    alert.append(text, dismiss);
    var dialog = document.querySelector("dialog[open]");
    var place = (dialog && (dialog.querySelector(".panel") || dialog)) || document.getElementById("main") || document.body;
    place.prepend(alert);
  }

  document.addEventListener("htmx:responseError", function (event) {
    // A region that reloads itself on a timer handles its own errors (above).
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-quiet-refresh")) return;
    show(whatTheServerSaid(event.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function () { show(OFFLINE); });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) clear();
  });
})();
