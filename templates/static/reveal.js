// Show-password buttons. Each button[data-reveal] names the password field
// it shows or hides. The page is served with a strict CSP (script-src
// 'self'), so this is a static file, not inline script; without it the
// buttons stay hidden and the fields stay plain password fields.
(() => {
  "use strict";
  for (const button of document.querySelectorAll("button[data-reveal]")) {
    const field = document.getElementById(button.dataset.reveal);
    if (!field || field.type !== "password") continue;
    const show = (shown) => {
      field.type = shown ? "text" : "password";
      button.textContent = shown ? button.dataset.hide : button.dataset.show;
      button.setAttribute("aria-label", shown ? button.dataset.hideLabel : button.dataset.showLabel);
    };
    button.addEventListener("click", () => {
      show(field.type === "password");
      field.focus();
    });
    // Hidden again before the form is sent: a shown password would be
    // kept as plain text in the browser's form history, and would still
    // be on screen if the page came back from the back/forward cache.
    if (field.form) field.form.addEventListener("submit", () => show(false));
    window.addEventListener("pagehide", () => show(false));
    button.hidden = false;
  }
})();
