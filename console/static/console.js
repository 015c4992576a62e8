// Live parts of a page: an element with data-live="URL" is refreshed from URL every few seconds
// (the server renders the fragment), while the tab is visible. No library, no CDN.
// A page opened with a control's id as its fragment (#call-resume) gives that control the focus: the
// server sends an agent back there after the control was pressed. Content put into the page without
// loading it (static/softphone.js, during a call in the browser) is announced by a "console:swapped"
// event on the document, and set up the same way.
"use strict";
(function () {
  const PERIOD_MS = 3000;
  const CONTROLS = "button, input, select, textarea, a[href]";

  // The replaced part's control that had the focus, found again by its id in the new content.
  function keepFocus(element, replace) {
    const had = document.activeElement;
    const id = had && element.contains(had) ? had.id : "";
    replace();
    if (!id) return;
    const again = document.getElementById(id);
    if (again && !again.disabled) again.focus();
  }
  function refresh(element) {
    if (document.hidden || !element.isConnected) return;
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
        keepFocus(element, function () { element.innerHTML = html; });
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
  function focusNamed() {
    const named = window.location.hash ? document.getElementById(window.location.hash.slice(1)) : null;
    if (named && named.matches(CONTROLS) && !named.disabled) named.focus();
  }
  // Everything `root` holds that needs a script: live parts, timers, the PIN code's district, confirmations.
  function enhance(root) {
    startTimers(root);
    root.querySelectorAll("[data-live]").forEach(function (element) {
      const every = setInterval(function () {
        if (!element.isConnected) { clearInterval(every); return; }
        refresh(element);
      }, PERIOD_MS);
    });
    root.querySelectorAll("input[data-district-url]").forEach(function (input) {
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
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    setInterval(tick, 1000);
    const ringing = document.querySelector("[data-focus]");
    if (ringing) ringing.focus();
    focusNamed();
  });
  document.addEventListener("console:swapped", function (event) {
    enhance(event.detail.root);
    focusNamed();
  });
})();
