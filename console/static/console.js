// Live parts of a page: an element with data-live="URL" is refreshed from URL every few seconds
// (the server renders the fragment), while the tab is visible. No library, no CDN.
// A page opened with a control's id as its fragment (#call-resume) gives that control the focus: the
// server sends an agent back there after the control was pressed. Content put into the page without
// loading it (static/softphone.js, during a call in the browser) is announced by a "console:swapped"
// event on the document, and set up the same way. Each fetch of a live part, once handled (drawn
// again, or left as it was), is announced by a "console:refreshed" event on that part.
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
  // What the user chose or typed in `element` and has not sent: each control by its id, with the
  // server's own value for it, and its form's action and hidden fields (which call, which request).
  function checkable(control) { return control.type === "checkbox" || control.type === "radio"; }
  function serverValue(control) {  // a select with no option marked selected: the server chose nothing
    if (checkable(control)) return control.defaultChecked;
    if (control.tagName !== "SELECT") return control.defaultValue;
    const chosen = Array.from(control.options).find(function (option) { return option.defaultSelected; });
    return chosen ? chosen.value : null;
  }
  function drawn(control) {
    const hidden = control.form ? Array.from(control.form.querySelectorAll("input[type=hidden]")) : [];
    return JSON.stringify([serverValue(control), control.form ? control.form.getAttribute("action") : "", hidden
      .filter(function (field) { return field.name !== "csrf_token"; })
      .map(function (field) { return field.name + "=" + field.value; })]);
  }
  function edits(element) {
    const found = [];
    element.querySelectorAll("input[id]:not([type=hidden]), select[id], textarea[id]").forEach(function (control) {
      const now = checkable(control) ? control.checked : control.value;
      const first = serverValue(control);
      const shown = first === null ? (control.options.length ? control.options[0].value : "") : first;
      if (now !== shown) found.push({id: control.id, drawn: drawn(control), now: now});
    });
    return found;
  }
  // Those edits put back into the new content, where the same control stands as the server drew it
  // before, and a choice only where it is still offered (an agent to transfer to may have gone).
  function offers(control, value) {
    return control.tagName !== "SELECT" || Array.from(control.options).some(function (option) { return option.value === value; });
  }
  function restore(found) {
    found.forEach(function (edit) {
      const control = document.getElementById(edit.id);
      if (!control || control.disabled || drawn(control) !== edit.drawn || !offers(control, edit.now)) return;
      if (checkable(control)) control.checked = edit.now;
      else control.value = edit.now;
    });
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
        // A timer (its seconds and the time it shows) differs at each fetch while nothing else did:
        // keep what is on the screen then, and let the timers tick on by themselves. When something
        // did change, what the user chose or typed and has not sent stays.
        const key = html.replace(/(data-(?:elapsed|left)=)"\d+"([^>]*>)[^<]*/g, "$1$2");
        if (element.liveKey !== key) {
          const offered = element.querySelector("[data-focus]") !== null;
          const unsent = edits(element);
          element.liveKey = key;
          keepFocus(element, function () { element.innerHTML = html; restore(unsent); });
          startTimers(element);
          const focus = element.querySelector("[data-focus]");
          if (focus && !offered) focus.focus();  // a caller rings: Accept has the focus
        }
        element.dispatchEvent(new CustomEvent("console:refreshed", {bubbles: true}));
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
