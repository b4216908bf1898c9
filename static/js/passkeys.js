// Passkeys (WebAuthn): add one on the Security page, sign in with one, use one as the
// second step. Each ceremony: POST for the options, the browser's prompt, POST of its
// answer as JSON; the server checks everything (accounts/passkeys.py). Included only on
// the pages that offer passkeys. Where the browser has no WebAuthn, the controls stay
// hidden and the "needs a browser that supports them" note stays.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64), bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer), binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    // The same token htmx sends: <body hx-headers='{"x-csrftoken": "…"}'>.
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["x-csrftoken"] || "";
    } catch (error) {
      return "";
    }
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().then(
        function (data) { return { ok: response.ok, status: response.status, data: data }; },
        function () {
          return { ok: false, status: response.status, data: { error: "The server did not answer as expected (" + response.status + "). Try again." } };
        }
      );
    });
  }

  function creationOptions(options) {
    options.challenge = toBuffer(options.challenge);
    options.user.id = toBuffer(options.user.id);
    (options.excludeCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    return options;
  }

  function requestOptions(options) {
    options.challenge = toBuffer(options.challenge);
    (options.allowCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
    if (response.attestationObject) {
      json.response.attestationObject = toText(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toText(response.authenticatorData);
      json.response.signature = toText(response.signature);
      if (response.userHandle) json.response.userHandle = toText(response.userHandle);
    }
    return json;
  }

  // What the browser's refusal means, in words for the person.
  function explain(error) {
    switch (error && error.name) {
      case "NotAllowedError":
        return "The passkey prompt was closed or timed out, or the browser refused it. Try again when you are ready.";
      case "AbortError":
        return "Cancelled. Try again when you are ready.";
      case "InvalidStateError":
        return "This device already holds a passkey for your account.";
      case "SecurityError":
        return "The browser refused: passkeys need a secure address (https, or localhost).";
      case "NotSupportedError":
        return "This device or browser cannot make a passkey of the kind asked for.";
      default:
        return "Something went wrong with the passkey: " + (error && error.message ? error.message : "unknown error") + ". Try again.";
    }
  }

  function say(box, text, kind) {
    var message = box.querySelector("[data-passkey-message]");
    if (!message) return;
    message.textContent = text;
    if (kind) message.setAttribute("data-kind", kind); else message.removeAttribute("data-kind");
  }

  function busy(box, on) {
    box.querySelectorAll("button").forEach(function (button) {
      button.disabled = on;
      if (on) button.setAttribute("aria-busy", "true"); else button.removeAttribute("aria-busy");
    });
  }

  function finish(box, result) {
    // A success goes on; so does "sign in again" (the step waited too long).
    if (result.data.redirect) {
      var target = new URL(result.data.redirect, window.location.href);
      if (target.pathname === window.location.pathname && target.search === window.location.search) {
        // Only the #fragment differs: assigning would scroll, not load the new list.
        window.location.hash = target.hash;
        window.location.reload();
      } else {
        window.location.assign(target.href);
      }
      return;
    }
    say(box, result.data.error || "That did not work. Try again.", "error");
    busy(box, false);
  }

  function failed(box, error) {
    say(box, explain(error), "error");
    busy(box, false);
  }

  // Add a passkey (Security page). Without a fresh check of who you are, the form goes to
  // the server as it is, which asks for it (sudo mode) and brings you back here.
  function register(form) {
    var box = form;
    busy(box, true);
    say(box, "Follow your browser's prompt…");
    post(form.getAttribute("data-options-url")).then(function (result) {
      if (result.status === 403 && result.data.sudo) {
        form.submit();
        return null;
      }
      if (!result.ok) return finish(box, result);
      return navigator.credentials.create({ publicKey: creationOptions(result.data) }).then(function (credential) {
        var name = form.querySelector("input[name=name]");
        return post(form.getAttribute("data-verify-url"), {
          credential: credentialJSON(credential),
          name: name ? name.value : ""
        }).then(function (answer) { finish(box, answer); });
      });
    }).catch(function (error) { failed(box, error); });
  }

  // Sign in with a passkey alone, or use one as the second step.
  function authenticate(box) {
    busy(box, true);
    say(box, "Follow your browser's prompt…");
    post(box.getAttribute("data-options-url")).then(function (result) {
      if (!result.ok) return finish(box, result);
      return navigator.credentials.get({ publicKey: requestOptions(result.data) }).then(function (credential) {
        return post(box.getAttribute("data-verify-url"), {
          credential: credentialJSON(credential),
          next: box.getAttribute("data-next") || ""
        }).then(function (answer) { finish(box, answer); });
      });
    }).catch(function (error) { failed(box, error); });
  }

  // The sudo prompt: the browser's answer goes back with the prompt's own form, which
  // carries the request it interrupted.
  function confirmWithPasskey(box) {
    var form = box.closest("form");
    busy(box, true);
    say(box, "Follow your browser's prompt…");
    post(box.getAttribute("data-options-url")).then(function (result) {
      if (!result.ok) return finish(box, result);
      return navigator.credentials.get({ publicKey: requestOptions(result.data) }).then(function (credential) {
        box.querySelector("input[name=sudo_passkey]").value = JSON.stringify(credentialJSON(credential));
        if (form.requestSubmit) form.requestSubmit(); else form.submit();
      });
    }).catch(function (error) { failed(box, error); });
  }

  function start() {
    document.querySelectorAll("[data-passkey]").forEach(function (box) { box.hidden = false; });
    document.querySelectorAll("[data-passkey-unsupported]").forEach(function (note) { note.hidden = true; });
    document.querySelectorAll("form[data-passkey-register]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        register(form);
      });
    });
    document.querySelectorAll("[data-passkey-sign-in], [data-passkey-second-factor]").forEach(function (box) {
      var button = box.querySelector("[data-passkey-button]");
      if (button) button.addEventListener("click", function () { authenticate(box); });
    });
    document.querySelectorAll("[data-passkey-sudo]").forEach(function (box) {
      var button = box.querySelector("[data-passkey-button]");
      if (button) button.addEventListener("click", function () { confirmWithPasskey(box); });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
