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
    document.querySelectorAll("input[data-district-url]").forEach(function (input) {
      const target = document.getElementById(input.dataset.districtTarget);
      input.addEventListener("input", function () {
        if (!/^[0-9]{6}$/.test(input.value)) { target.value = ""; return; }
        fetch(input.dataset.districtUrl.replace("000000", input.value), {credentials: "same-origin"})
          .then(function (response) { return response.json(); })
          .then(function (place) {
            target.value = !place.found ? "?" : place.district + (place.in_service_area ? "" : " ✗");
          })
          .catch(function () { target.value = ""; });
      });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  });
})();
