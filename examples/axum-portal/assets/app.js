// The portal's only script: "copy for support" buttons copy their data-copy text.
// Everything else works without it (forms post, confirmations are <details>).
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
