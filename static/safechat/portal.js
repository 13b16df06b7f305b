// SafeChat portal behaviour. Loaded from 'self' (CSP forbids inline scripts).
"use strict";
document.addEventListener("click", (event) => {
  // Buttons with data-confirm ask before submitting a destructive form.
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});
