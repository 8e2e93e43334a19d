// The account page's script (account.html): the cookie session API, nothing else.
// Text from the API goes into the page as text nodes only (textContent, append).
(function () {
  "use strict";

  // Every call the page makes: [method, path]. The tests compare this table with
  // the app's OpenAPI document (and the passkey contract): keep every API path here.
  const API = {
    login: ["POST", "/api/auth/cookie/login"],
    secondFactor: ["POST", "/api/auth/cookie/second-factor"],
    refresh: ["POST", "/api/auth/cookie/refresh"],
    logout: ["POST", "/api/auth/cookie/logout"],
    logoutAll: ["POST", "/api/auth/logout-all"],
    me: ["GET", "/api/users/me"],
    providers: ["GET", "/api/auth/oidc/providers"],
    oidcStart: ["GET", "/api/auth/oidc/{provider}/start"],
    links: ["GET", "/api/auth/oidc/links"],
    unlink: ["DELETE", "/api/auth/oidc/links/{provider}"],
    sessions: ["GET", "/api/auth/sessions"],
    endSession: ["DELETE", "/api/auth/sessions/{session_id}"],
    totpStatus: ["GET", "/api/auth/totp"],
    totpSetup: ["POST", "/api/auth/totp/setup"],
    totpConfirm: ["POST", "/api/auth/totp/confirm"],
    totpDisable: ["POST", "/api/auth/totp/disable"],
    recoveryCodes: ["POST", "/api/auth/totp/recovery-codes"],
    passkeys: ["GET", "/api/auth/passkeys"],
    passkeyRegisterOptions: ["POST", "/api/auth/passkeys/register/options"],
    passkeyAdd: ["POST", "/api/auth/passkeys"],
    passkeyRename: ["PATCH", "/api/auth/passkeys/{id}"],
    passkeyRemove: ["DELETE", "/api/auth/passkeys/{id}"],
    passkeyLoginOptions: ["POST", "/api/auth/passkeys/login/options"],
    passkeyLogin: ["POST", "/api/auth/cookie/passkey"]
  };
  // Calls made without a session, or about the session itself: a 401 there is
  // the answer, not a reason to refresh.
  const NO_REFRESH = [API.login, API.secondFactor, API.refresh, API.logout,
    API.providers, API.passkeyLoginOptions, API.passkeyLogin];
  const CSRF_COOKIE = "__Host-csrf";
  const SECOND_STEP_FRAGMENT = "oidc_second_factor";
  const HERE = "/account";

  const byId = (id) => document.getElementById(id);
  let challenge = null; // a second step's challenge, between the two steps

  // --- Talking to the API -------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  function path(route, params) {
    return route[1].replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(params[name]));
  }

  function csrfToken() {
    const prefix = CSRF_COOKIE + "=";
    const cookie = document.cookie.split("; ").find((c) => c.startsWith(prefix));
    return cookie ? decodeURIComponent(cookie.slice(prefix.length)) : "";
  }

  async function detailOf(response) {
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (body && typeof body.detail === "string") { return body.detail; }
    if (body && Array.isArray(body.detail) && body.detail.length) {
      return String(body.detail[0].msg);
    }
    return "Something went wrong (HTTP " + response.status + "); try again.";
  }

  function send(route, options) {
    const headers = {};
    const init = {method: route[0], headers: headers, credentials: "same-origin"};
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    const token = csrfToken();
    if (route[0] !== "GET" && token) { headers["X-CSRF-Token"] = token; }
    return fetch(path(route, options.params || {}), init);
  }

  // One refresh at a time: a refresh cookie works once, and several calls may
  // find the access cookie expired together.
  let refreshing = null;
  function refresh() {
    if (!csrfToken()) { return Promise.resolve(false); }
    if (!refreshing) {
      refreshing = send(API.refresh, {})
        .then((response) => response.ok, () => false)
        .finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // The answer's JSON (null for a 204), or an ApiError with the answer's detail.
  async function call(route, options) {
    options = options || {};
    let response = await send(route, options);
    if (response.status === 401 && !NO_REFRESH.includes(route) && await refresh()) {
      response = await send(route, options);
    }
    if (!response.ok) { throw new ApiError(response.status, await detailOf(response)); }
    return response.status === 204 ? null : response.json();
  }

  // --- The page -----------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) { node.setAttribute(name, value); }
    for (const child of children) {
      if (child !== null && child !== undefined) { node.append(child); } // strings: text nodes
    }
    return node;
  }

  function show(element, visible) { element.hidden = !visible; }
  function say(element, text) { element.textContent = text || ""; }
  function notice(text) { say(byId("notice"), text); }
  function when(iso) { return iso ? new Date(iso).toLocaleString() : "never"; }

  function setState(state) {
    document.body.dataset.state = state;
    show(byId("loading"), state === "loading");
    show(byId("signed-out"), state === "signed-out");
    show(byId("signed-in"), state === "signed-in");
  }

  function messageOf(error) {
    if (error instanceof ApiError) { return error.detail; }
    if (error instanceof DOMException) {
      if (error.name === "NotAllowedError") { return "The passkey request was cancelled or timed out."; }
      return "Passkey: " + error.message;
    }
    if (error instanceof TypeError) { return "The server could not be reached; try again."; }
    return String(error && error.message ? error.message : error);
  }

  // An action of the page: its error line cleared, then filled if it fails; its
  // buttons disabled meanwhile. A 401 when signed in means the session ended.
  function action(errorId, run) {
    return async function (event) {
      if (event) { event.preventDefault(); }
      const errorLine = byId(errorId);
      const target = event ? event.currentTarget : null; // the form or the button
      const buttons = target instanceof HTMLFormElement ? Array.from(target.querySelectorAll("button"))
        : target instanceof HTMLButtonElement ? [target] : [];
      say(errorLine, "");
      notice("");
      buttons.forEach((button) => { button.disabled = true; });
      try {
        await run(event);
      } catch (error) {
        if (error instanceof ApiError && error.status === 401 && document.body.dataset.state === "signed-in") {
          signedOut("Your session has ended: sign in again.");
        } else {
          say(errorLine, messageOf(error));
        }
      } finally {
        buttons.forEach((button) => { button.disabled = false; });
      }
    };
  }

  function on(id, type, handler) { byId(id).addEventListener(type, handler); }

  // --- Signed out: password, second step, providers, passkey --------------------

  function signedOut(message) {
    challenge = null;
    byId("login-form").reset();
    byId("second-factor-form").reset();
    show(byId("login-form"), true);
    show(byId("second-factor-form"), false);
    for (const id of ["passkey-list", "session-list", "link-list", "recovery-codes-list"]) {
      byId(id).replaceChildren();
    }
    closeTotpSetup();
    show(byId("recovery-codes"), false);
    setState("signed-out");
    notice(message);
    loadProviders();
  }

  function askSecondStep(newChallenge) {
    challenge = newChallenge;
    show(byId("login-form"), false);
    show(byId("second-factor-form"), true);
    setState("signed-out");
    byId("second-factor-code").focus();
  }

  // The answer of a sign-in: a session (200), or a second step owed (202).
  async function signedIn(answer) {
    if (answer && answer.second_factor_required) {
      askSecondStep(answer.challenge);
      return;
    }
    challenge = null;
    byId("login-form").reset();
    byId("second-factor-form").reset();
    await loadAccount();
  }

  async function loadProviders() {
    const list = byId("provider-list");
    try {
      const providers = await call(API.providers);
      list.replaceChildren(...providers.map((provider) => {
        const link = el("a", {
          class: "button",
          "data-testid": "provider-" + provider.name,
          href: path(API.oidcStart, {provider: provider.name}) +
            "?redirect_to=" + encodeURIComponent(HERE)
        }, "Sign in with " + provider.display_name);
        return el("li", {}, link);
      }));
    } catch (error) {
      list.replaceChildren(); // no provider buttons; password and passkey remain
    }
  }

  on("login-form", "submit", action("login-error", async () => {
    const answer = await call(API.login, {body: {
      email: byId("login-email").value,
      password: byId("login-password").value
    }});
    await signedIn(answer);
  }));

  on("second-factor-form", "submit", action("login-error", async () => {
    const answer = await call(API.secondFactor, {body: {
      challenge: challenge,
      code: byId("second-factor-code").value.trim()
    }});
    await signedIn(answer);
  }));

  on("second-factor-cancel", "click", () => signedOut(""));

  on("passkey-login", "click", action("login-error", async () => {
    requireWebAuthn();
    const options = await passkeyCall(API.passkeyLoginOptions);
    const credential = await navigator.credentials.get({publicKey: requestOptions(options.publicKey)});
    const answer = await call(API.passkeyLogin, {body: {
      ceremony: options.ceremony,
      credential: credentialJSON(credential)
    }});
    await signedIn(answer);
  }));

  // --- Signed in ----------------------------------------------------------------

  async function loadAccount() {
    const me = await call(API.me);
    say(byId("me-email"), me.email);
    say(byId("me-name"), me.full_name || "—");
    say(byId("me-verified"), me.is_verified ? "yes" : "no");
    setState("signed-in");
    await Promise.all([
      action("totp-error", loadTotp)(),
      action("passkeys-error", loadPasskeys)(),
      action("sessions-error", loadSessions)(),
      action("links-error", loadLinks)()
    ]);
  }

  on("logout", "click", action("account-error", async () => {
    try {
      await call(API.logout);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) { throw error; }
    }
    signedOut("You are signed out.");
  }));

  on("logout-all", "click", action("account-error", async () => {
    await call(API.logoutAll);
    signedOut("Every session is signed out, this one included.");
  }));

  // --- Second factor ------------------------------------------------------------

  async function loadTotp() {
    const status = await call(API.totpStatus);
    say(byId("totp-status"), status.enabled
      ? "On: signing in asks for a code. Recovery codes left: " + status.recovery_codes_left + "."
      : "Off: signing in asks for the password alone.");
    show(byId("totp-on"), status.enabled);
    show(byId("totp-setup-start"), !status.enabled && byId("totp-setup").hidden);
  }

  function closeTotpSetup() {
    byId("totp-qr").removeAttribute("src");
    say(byId("totp-secret"), "");
    byId("totp-confirm-form").reset();
    show(byId("totp-setup"), false);
  }

  function showRecoveryCodes(codes) {
    byId("recovery-codes-list").replaceChildren(...codes.map((code) => el("li", {}, code)));
    show(byId("recovery-codes"), true);
  }

  on("totp-setup-start", "click", action("totp-error", async () => {
    const setup = await call(API.totpSetup);
    // An <img> of a data: URL (the page's CSP allows img-src data: only): an
    // image runs no script and loads nothing, whatever the SVG holds.
    byId("totp-qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(setup.qr_svg);
    say(byId("totp-secret"), setup.secret);
    show(byId("totp-setup"), true);
    show(byId("totp-setup-start"), false);
    byId("totp-confirm-code").focus();
  }));

  on("totp-setup-cancel", "click", () => {
    closeTotpSetup();
    show(byId("totp-setup-start"), byId("totp-on").hidden);
  });

  on("totp-confirm-form", "submit", action("totp-error", async () => {
    const answer = await call(API.totpConfirm, {body: {code: byId("totp-confirm-code").value.trim()}});
    closeTotpSetup();
    showRecoveryCodes(answer.recovery_codes);
    notice("The second factor is on.");
    await loadTotp();
  }));

  on("recovery-codes-done", "click", () => {
    byId("recovery-codes-list").replaceChildren();
    show(byId("recovery-codes"), false);
  });

  on("totp-regenerate-form", "submit", action("totp-error", async () => {
    const answer = await call(API.recoveryCodes, {body: {code: byId("totp-regenerate-code").value.trim()}});
    byId("totp-regenerate-form").reset();
    showRecoveryCodes(answer.recovery_codes);
    notice("New recovery codes: the old ones no longer work.");
    await loadTotp();
  }));

  on("totp-disable-form", "submit", action("totp-error", async () => {
    await call(API.totpDisable, {body: {code: byId("totp-disable-code").value.trim()}});
    byId("totp-disable-form").reset();
    show(byId("recovery-codes"), false);
    notice("The second factor is off.");
    await loadTotp();
  }));

  // --- Passkeys (WebAuthn) ------------------------------------------------------

  function bytes(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
  }

  function base64url(buffer) {
    const binary = String.fromCharCode(...new Uint8Array(buffer));
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+/g, "");
  }

  function requireWebAuthn() {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      throw new Error("This browser does not support passkeys.");
    }
  }

  // The passkey routes may not be on this server: say so rather than "Not Found".
  async function passkeyCall(route, options) {
    try {
      return await call(route, options);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && error.detail === "Not Found") {
        throw new ApiError(404, "Passkeys are not available on this server.");
      }
      throw error;
    }
  }

  function withIds(descriptors) {
    return (descriptors || []).map((d) => Object.assign({}, d, {id: bytes(d.id)}));
  }

  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: bytes(json.challenge),
      user: Object.assign({}, json.user, {id: bytes(json.user.id)}),
      excludeCredentials: withIds(json.excludeCredentials)
    });
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: bytes(json.challenge),
      allowCredentials: withIds(json.allowCredentials)
    });
  }

  // RegistrationResponseJSON or AuthenticationResponseJSON (WebAuthn level 3).
  function credentialJSON(credential) {
    if (!credential) { throw new Error("No passkey was given."); }
    if (typeof credential.toJSON === "function") { return credential.toJSON(); }
    const r = credential.response;
    const response = {clientDataJSON: base64url(r.clientDataJSON)};
    if (r.attestationObject) {
      response.attestationObject = base64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = base64url(r.authenticatorData);
      response.signature = base64url(r.signature);
      if (r.userHandle) { response.userHandle = base64url(r.userHandle); }
    }
    return {
      id: credential.id,
      rawId: base64url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || null
    };
  }

  function passkeyItem(passkey) {
    const name = el("input", {"data-testid": "passkey-name", "aria-label": "Passkey name", maxlength: "100"});
    name.value = passkey.name;
    const rename = el("button", {type: "button", "data-testid": "passkey-rename"}, "Rename");
    const remove = el("button", {type: "button", "data-testid": "passkey-remove"}, "Remove");
    rename.addEventListener("click", action("passkeys-error", async () => {
      await passkeyCall(API.passkeyRename, {params: {id: passkey.id}, body: {name: name.value.trim()}});
      notice("Passkey renamed.");
      await loadPasskeys();
    }));
    remove.addEventListener("click", action("passkeys-error", async () => {
      await passkeyCall(API.passkeyRemove, {params: {id: passkey.id}});
      notice("Passkey removed.");
      await loadPasskeys();
    }));
    const meta = el("span", {class: "meta"},
      "Added " + when(passkey.created_at) + " · last used " + when(passkey.last_used_at));
    return el("li", {"data-testid": "passkey", "data-id": String(passkey.id)}, name, meta, rename, remove);
  }

  async function loadPasskeys() {
    const passkeys = await passkeyCall(API.passkeys);
    byId("passkey-list").replaceChildren(...passkeys.map(passkeyItem));
  }

  on("passkey-add-form", "submit", action("passkeys-error", async () => {
    requireWebAuthn();
    const options = await passkeyCall(API.passkeyRegisterOptions);
    const credential = await navigator.credentials.create({publicKey: creationOptions(options.publicKey)});
    await passkeyCall(API.passkeyAdd, {body: {
      ceremony: options.ceremony,
      credential: credentialJSON(credential),
      name: byId("passkey-add-name").value.trim()
    }});
    byId("passkey-add-form").reset();
    notice("Passkey added.");
    await loadPasskeys();
  }));

  // --- Sessions -----------------------------------------------------------------

  function sessionItem(session) {
    const end = el("button", {type: "button", "data-testid": "session-end"},
      session.current ? "Sign out here" : "End this session");
    end.addEventListener("click", action("sessions-error", async () => {
      await call(API.endSession, {params: {session_id: session.id}});
      if (session.current) {
        signedOut("You are signed out.");
        return;
      }
      notice("The session is ended.");
      await loadSessions();
    }));
    return el("li", {"data-testid": "session", "data-id": session.id, "data-current": String(session.current)},
      session.last_user_agent || session.user_agent || "An unknown client",
      session.current ? el("strong", {}, " (this browser)") : null,
      el("span", {class: "meta"},
        "Signed in " + when(session.created_at) + " · last active " + when(session.last_used_at) +
        " · from " + (session.last_client_address || session.client_address || "an unknown address")),
      end);
  }

  async function loadSessions() {
    const sessions = await call(API.sessions);
    byId("session-list").replaceChildren(...sessions.map(sessionItem));
  }

  // --- Linked providers ---------------------------------------------------------

  function linkItem(link) {
    const remove = el("button", {type: "button", "data-testid": "link-remove"}, "Unlink");
    remove.addEventListener("click", action("links-error", async () => {
      await call(API.unlink, {params: {provider: link.provider}});
      notice("Unlinked.");
      await loadLinks();
    }));
    return el("li", {"data-testid": "link", "data-provider": link.provider},
      link.provider + " (" + link.email + ")",
      el("span", {class: "meta"}, "Linked " + when(link.created_at)),
      remove);
  }

  async function loadLinks() {
    const links = await call(API.links);
    byId("link-list").replaceChildren(...links.map(linkItem));
    show(byId("links-none"), links.length === 0);
  }

  // --- On load ------------------------------------------------------------------

  async function start() {
    setState("loading");
    // Back from a provider with a second step owed: the challenge is in the
    // fragment (never sent to a server); it leaves the address bar at once.
    const owed = new URLSearchParams(location.hash.slice(1)).get(SECOND_STEP_FRAGMENT);
    if (location.hash) { history.replaceState(null, "", location.pathname + location.search); }
    if (owed) {
      loadProviders();
      askSecondStep(owed);
      return;
    }
    try {
      await loadAccount();
    } catch (error) {
      signedOut(error instanceof ApiError && error.status === 401 ? "" : messageOf(error));
    }
  }

  start();
})();
