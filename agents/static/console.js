// Live parts of a page: an element with data-live="URL" is refreshed from URL every few seconds
// (the server renders the fragment), while the tab is visible. No library, no CDN.
"use strict";
(function () {
  const PERIOD_MS = 3000;
  function refresh(element) {
    if (document.hidden) return;
    fetch(element.dataset.live, {headers: {"X-Live": "1"}, credentials: "same-origin"})
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 403) {
          window.location.reload();  // the session ended: show the sign-in page
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined && element.innerHTML !== html) {
          element.innerHTML = html;
        }
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (element) {
      setInterval(function () { refresh(element); }, PERIOD_MS);
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  });
})();
