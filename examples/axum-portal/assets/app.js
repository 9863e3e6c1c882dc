// The portal's only script. Everything works without it (forms post, confirmations are
// <details>) except what browsers give only to scripts: copying to the clipboard, and
// passkeys.

// "Copy for support" buttons copy their data-copy text.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const text = button.dataset.copy || "";
  const done = button.parentElement.querySelector(".copied");
  const say = (message) => { if (done) done.textContent = message; };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(() => say("Copied"), () => say("Select and copy: " + text));
  } else {
    say("Select and copy: " + text);
  }
});

// Passkeys. A form with data-passkey-options (hidden until this script sees that the
// browser has passkeys) asks that JSON route for a ceremony when submitted (sending the
// form's challenge, if it has one), lets the authenticator answer it, and posts the
// answer with the form: the server signs in, or shows the problem.
const base64url = {
  decode: (text) => {
    const plain = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = plain + "=".repeat((4 - (plain.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  },
  encode: (buffer) => {
    let text = "";
    for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

// The API's options (binary fields as base64url) as navigator.credentials.get() takes them.
const requestOptions = (options) => {
  const publicKey = { ...options.publicKey, challenge: base64url.decode(options.publicKey.challenge) };
  if (publicKey.allowCredentials) {
    publicKey.allowCredentials = publicKey.allowCredentials.map((c) => ({ ...c, id: base64url.decode(c.id) }));
  }
  return { publicKey };
};

// The authenticator's answer as the API reads it (binary fields as base64url).
const assertionJson = (credential) => ({
  id: credential.id,
  rawId: base64url.encode(credential.rawId),
  type: credential.type,
  response: {
    authenticatorData: base64url.encode(credential.response.authenticatorData),
    clientDataJSON: base64url.encode(credential.response.clientDataJSON),
    signature: base64url.encode(credential.response.signature),
    userHandle: credential.response.userHandle ? base64url.encode(credential.response.userHandle) : null,
  },
  extensions: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
});

// navigator.credentials.create()'s options from the API's (binary fields as base64url).
const creationOptions = (options) => {
  const publicKey = {
    ...options.publicKey,
    challenge: base64url.decode(options.publicKey.challenge),
    user: { ...options.publicKey.user, id: base64url.decode(options.publicKey.user.id) },
  };
  if (publicKey.excludeCredentials) {
    publicKey.excludeCredentials = publicKey.excludeCredentials.map((c) => ({ ...c, id: base64url.decode(c.id) }));
  }
  return { publicKey };
};

// The new credential as the API reads it.
const attestationJson = (credential) => ({
  id: credential.id,
  rawId: base64url.encode(credential.rawId),
  type: credential.type,
  response: {
    attestationObject: base64url.encode(credential.response.attestationObject),
    clientDataJSON: base64url.encode(credential.response.clientDataJSON),
  },
  extensions: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
});

// A POST to the JSON API as the page's user: the session cookie, the form's CSRF token in
// the header, and the problem's text as the error when refused.
const apiPost = async (form, url, body) => {
  const init = { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": form.elements.csrf.value } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(url, init);
  const json = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error((json.detail || json.title || "refused") + (json.code ? " (" + json.code + ")" : ""));
  return json;
};

// Whether a code or a recovery code was typed in the form.
const typedCode = (form) =>
  ["code", "recovery_code"].some((name) => form.elements[name] && form.elements[name].value.trim());

// The fresh passkey answer a form with data-passkey-proof offers when no code was typed:
// a re-authentication ceremony of the signed-in user, answered by one of their passkeys.
const passkeyProof = async (form) => {
  if (!form.dataset.passkeyProof || typedCode(form)) return null;
  const ceremony = await apiPost(form, form.dataset.passkeyProof);
  const credential = await navigator.credentials.get(requestOptions(ceremony.options));
  return { ceremony_token: ceremony.ceremony_token, credential: assertionJson(credential) };
};

// What each kind of passkey form does on submit before it posts.
const passkeySteps = {
  // Sign-in: a ceremony for the sign-in (or its challenge), answered.
  async sign_in(form) {
    const challenge = form.elements.challenge;
    const init = { method: "POST", credentials: "same-origin" };
    if (challenge) {
      init.headers = { "content-type": "application/json" };
      init.body = JSON.stringify({ challenge_token: challenge.value });
    }
    const answer = await fetch(form.dataset.passkeyOptions, init);
    const ceremony = await answer.json();
    if (!answer.ok) throw new Error(ceremony.detail || ceremony.title || "the portal refused");
    const credential = await navigator.credentials.get(requestOptions(ceremony.options));
    form.elements.ceremony_token.value = ceremony.ceremony_token;
    form.elements.credential.value = JSON.stringify(assertionJson(credential));
  },
  // Adding a passkey: the password and a fresh factor (a code, or a passkey's answer) for
  // the registration's options, then the authenticator makes the passkey. The password
  // and code stay in the page: the form posts the new passkey only.
  async create(form) {
    const body = { password: form.elements.password.value };
    const code = form.elements.code;
    if (code && code.value.trim()) body.code = code.value.trim();
    const proof = await passkeyProof(form);
    if (proof) body.passkey = proof;
    const ceremony = await apiPost(form, form.dataset.passkeyCreate, body);
    const credential = await navigator.credentials.create(creationOptions(ceremony.options));
    form.elements.ceremony_token.value = ceremony.ceremony_token;
    form.elements.credential.value = JSON.stringify(attestationJson(credential));
    form.elements.password.value = "";
    if (code) code.value = "";
  },
  // A change that asks a fresh factor: a passkey's answer, posted with the form.
  async proof(form) {
    const proof = await passkeyProof(form);
    if (!proof) return;
    form.elements.passkey_ceremony_token.value = proof.ceremony_token;
    form.elements.passkey_credential.value = JSON.stringify(proof.credential);
  },
};

const passkeyStep = (form) => {
  if (form.dataset.passkeyOptions) return passkeySteps.sign_in;
  if (form.dataset.passkeyCreate) return passkeySteps.create;
  return passkeySteps.proof;
};

if (window.PublicKeyCredential && navigator.credentials) {
  for (const note of document.querySelectorAll("[data-passkey-fallback]")) note.hidden = true;
  const forms = "form[data-passkey-options], form[data-passkey-create], form[data-passkey-proof]";
  for (const form of document.querySelectorAll(forms)) {
    form.hidden = false;
    const step = passkeyStep(form);
    form.addEventListener("submit", async (event) => {
      // A proof is needed only without a code: with one, the form posts as it is.
      if (step === passkeySteps.proof && typedCode(form)) return;
      event.preventDefault();
      const status = form.querySelector(".passkey-status");
      const say = (text) => { if (status) status.textContent = text; };
      say("Waiting for your passkey…");
      try {
        await step(form);
        form.submit();
      } catch (err) {
        say("The passkey step did not finish (" + err.message + "). Try again.");
      }
    });
  }
}
