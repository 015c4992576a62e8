// Keyboard shortcuts of the console: the table in the "Keyboard shortcuts" dialog
// (templates/console/_shortcuts.html) says which key presses which control; "?" opens it.
// A key typed into a field, or with Ctrl, Alt or Meta, is the field's or the browser's, never ours;
// Escape leaves a field (a text box or a select), so that the next key is a shortcut.
"use strict";
(function () {
  function typing(target) {
    return target instanceof Element &&
      (target.closest("input, select, textarea, [contenteditable]") !== null);
  }
  function visible(element) {
    return element.getClientRects().length > 0 && !element.closest("dialog:not([open])");
  }
  function firstVisible(selector) {
    return Array.from(document.querySelectorAll(selector)).find(visible) || null;
  }
  // A control's key, told to screen readers (aria-keyshortcuts).
  function announce(rows) {
    rows.forEach(function (row) {
      if (!row.dataset.target) return;
      document.querySelectorAll(row.dataset.target).forEach(function (control) {
        if (control.matches("button")) control.setAttribute("aria-keyshortcuts", row.dataset.key);
      });
    });
  }
  function press(row) {
    const control = firstVisible(row.dataset.target);
    if (control === null) return false;
    if (control.matches("button")) {
      if (control.disabled) return false;
      control.click();
    } else {
      control.focus();
    }
    return true;
  }
  document.addEventListener("DOMContentLoaded", function () {
    const dialog = document.getElementById("shortcuts");
    if (dialog === null) return;
    const rows = Array.from(dialog.querySelectorAll("tr[data-key]"));
    const opener = document.getElementById("shortcuts-open");
    if (opener) opener.addEventListener("click", function () { dialog.showModal(); });
    announce(rows);
    // Live parts are redrawn (the agent bar, the call's controls), and a page's parts may be put in
    // place without loading it (during a call in the browser): announce the keys again each time.
    const redrawn = new MutationObserver(function () { announce(rows); });
    function watch(root) {
      root.querySelectorAll("[data-live]").forEach(function (live) { redrawn.observe(live, {childList: true}); });
    }
    watch(document);
    document.addEventListener("console:swapped", function (event) {
      watch(event.detail.root);
      announce(rows);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && event.target.matches && event.target.matches("input, select, textarea")) {
        event.target.blur();  // out of the field, so that the next key is a shortcut
        return;
      }
      if (event.ctrlKey || event.altKey || event.metaKey || event.defaultPrevented || typing(event.target)) return;
      if (event.key === "?") {
        if (!dialog.open) dialog.showModal();
        event.preventDefault();
        return;
      }
      if (dialog.open) return;
      const row = rows.find(function (r) { return r.dataset.key === event.key && r.dataset.target; });
      if (row && press(row)) event.preventDefault();
    });
  });
})();
