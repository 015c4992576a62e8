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
        if (html === null || html === undefined) return;
        // A timer's start differs at each fetch while nothing else did: keep what is on the screen
        // (a reason being chosen in a select), and let the timers tick on by themselves.
        const key = html.replace(/data-(elapsed|left)="\d+"/g, "");
        if (element.liveKey === key) return;
        const offered = element.querySelector("[data-focus]") !== null;
        element.liveKey = key;
        element.innerHTML = html;
        startTimers(element);
        const focus = element.querySelector("[data-focus]");
        if (focus && !offered) focus.focus();  // a caller rings: Accept has the focus
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  // Timers: data-elapsed counts up, data-left down, from the seconds the server rendered, in 0:42 form.
  function clockTime(seconds) {
    seconds = Math.max(0, seconds);
    const h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    const ss = (s < 10 ? "0" : "") + s;
    return h ? h + ":" + (m < 10 ? "0" : "") + m + ":" + ss : m + ":" + ss;
  }
  function startTimers(root) {
    const started = Date.now();
    root.querySelectorAll("[data-elapsed], [data-left]").forEach(function (timer) {
      timer.timerStart = started;
    });
  }
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-elapsed], [data-left]").forEach(function (timer) {
      const passed = Math.floor((now - (timer.timerStart || now)) / 1000);
      timer.textContent = timer.dataset.elapsed !== undefined
        ? clockTime(Number(timer.dataset.elapsed) + passed)
        : clockTime(Number(timer.dataset.left) - passed);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    startTimers(document);
    setInterval(tick, 1000);
    const ringing = document.querySelector("[data-focus]");
    if (ringing) ringing.focus();
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
