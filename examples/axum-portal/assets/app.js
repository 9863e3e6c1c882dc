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

if (window.PublicKeyCredential && navigator.credentials) {
  for (const note of document.querySelectorAll("[data-passkey-fallback]")) note.hidden = true;
  for (const form of document.querySelectorAll("form[data-passkey-options]")) {
    form.hidden = false;
    const status = form.querySelector(".passkey-status");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const challenge = form.elements.challenge;
      const init = { method: "POST", credentials: "same-origin" };
      if (challenge) {
        init.headers = { "content-type": "application/json" };
        init.body = JSON.stringify({ challenge_token: challenge.value });
      }
      status.textContent = "Waiting for your passkey…";
      try {
        const answer = await fetch(form.dataset.passkeyOptions, init);
        const ceremony = await answer.json();
        if (!answer.ok) throw new Error(ceremony.detail || ceremony.title || "the portal refused");
        const credential = await navigator.credentials.get(requestOptions(ceremony.options));
        form.elements.ceremony_token.value = ceremony.ceremony_token;
        form.elements.credential.value = JSON.stringify(assertionJson(credential));
        form.submit();
      } catch (err) {
        status.textContent = "The passkey did not answer (" + err.message + "). Try again, or sign in another way.";
      }
    });
  }
}
