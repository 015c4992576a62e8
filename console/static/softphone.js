// The console's softphone: when the agent (answering in this browser) has taken a caller, the state
// bar names that caller (data-softphone-call) and this connects to them with the platform's own SDK,
// vendored under static/vendor/ (Twilio's Voice JavaScript SDK, or Plivo's Browser SDK): a token from
// the helpline, then a call whose parameter names the caller; the platform asks the helpline's
// voice webhook, which puts this leg into the caller's room.
//
// There is one Mute, the room's, on the caller's screen ("This call"): the helpline mutes this leg on
// the platform, as for a desk phone, and the card says so. The panel here says what the browser's
// call is doing and hangs it up.
//
// Leaving the page would end the browser's call, and the console is many pages: while a call is being
// connected or is live, the console's forms and links are followed without leaving the page (the
// page they lead to is fetched and its header, agent bar, main part and title put in place of this
// page's); the focus goes back to the form that was used, else to the main part. Anything else that
// would leave the page (a reload, another address) is asked about first.
"use strict";
(function () {
  const CHECK_MS = 1000;
  const TRIED = "softphone-call";  // the caller this tab connected to (once: a reload does not ring again)
  const SWAPPED = ["header.top", "#agent-desk", "#main"];
  let panel = null;
  let live = null;  // {hangup()} of the call in progress
  let calling = false;  // a call being connected or in progress: the page must not be left

  function say(what) {
    const status = panel.querySelector("#softphone-status");
    status.textContent = panel.dataset["said" + what];
    panel.dataset.state = what.toLowerCase();
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"X-CSRF-Token": panel.dataset.csrf, "Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams(body || {}).toString(),
    });
  }

  // The call never reached the caller: the helpline frees them for another agent.
  function failed(callSid, why) {
    live = null;
    calling = false;
    panel.querySelector("#softphone-hangup").disabled = true;
    say(why || "Failed");
    post(panel.dataset.failedUrl, {call: callSid}).catch(function () { /* the claim runs out by itself */ });
  }

  function connected(handle) {
    live = handle;
    panel.querySelector("#softphone-hangup").disabled = false;
    say("OnCall");
  }

  function ended() {
    live = null;
    calling = false;
    panel.querySelector("#softphone-hangup").disabled = true;
    say("Ended");
  }

  function viaTwilio(token, callSid) {
    // The SDK's sounds would come from Twilio's CDN: a silent file of the helpline's own stands in.
    const sounds = {};
    ["incoming", "outgoing", "disconnect", "dtmfh", "dtmfs"].concat(
      "0123456789".split("").map(function (digit) { return "dtmf" + digit; })
    ).forEach(function (name) { sounds[name] = panel.dataset.silence; });
    const device = new window.Twilio.Device(token, {logLevel: "error", sounds: sounds});
    let accepted = false, over = false;
    function gone(failure) {  // once: the device stops trying to reach Twilio
      if (over) return;
      over = true;
      device.destroy();
      if (failure) failed(callSid); else ended();
    }
    device.on("error", function () { if (!accepted) gone(true); });
    return device.connect({params: {call: callSid}}).then(function (call) {
      call.on("accept", function () {
        accepted = true;
        connected({hangup: function () { call.disconnect(); }});
      });
      call.on("disconnect", function () { gone(false); });
      call.on("cancel", function () { gone(false); });
      call.on("error", function () { if (!accepted) gone(true); });
    });
  }

  function viaPlivo(token, callSid) {
    const client = new window.Plivo({debug: "ERROR", permOnClick: false, allowMultipleIncomingCalls: false}).client;
    let accepted = false;
    let over = false;
    function gone(failure) {  // once: the client stops trying to reach Plivo
      if (over) return;
      over = true;
      try { client.logout(); } catch (e) { /* not logged in */ }
      if (failure) failed(callSid); else ended();
    }
    client.on("onLogin", function () { client.call("helpline", {"X-PH-Call": callSid}); });
    client.on("onLoginFailed", function () { gone(true); });
    client.on("onCallFailed", function () { if (!accepted) gone(true); });
    client.on("onCallAnswered", function () {
      accepted = true;
      connected({hangup: function () { client.hangup(); }});
    });
    client.on("onCallTerminated", function () { gone(false); });
    client.loginWithAccessToken(token);
  }

  function connect(callSid) {
    sessionStorage.setItem(TRIED, callSid);
    calling = true;
    say("Connecting");
    const microphone = navigator.mediaDevices && navigator.mediaDevices.getUserMedia
      ? navigator.mediaDevices.getUserMedia({audio: true})
      : Promise.reject(new Error("no microphone"));
    microphone
      .then(function (stream) {
        stream.getTracks().forEach(function (track) { track.stop(); });  // the SDK opens its own
        return post(panel.dataset.tokenUrl).then(function (response) {
          if (!response.ok) throw new Error("no token");
          return response.json();
        }).then(function (given) {
          return given.platform === "plivo" ? viaPlivo(given.token, callSid) : viaTwilio(given.token, callSid);
        }).catch(function () { failed(callSid); });
      }, function () { failed(callSid, "MicBlocked"); });
  }

  function check() {
    const marker = document.querySelector("[data-softphone-call]");
    const callSid = marker ? marker.dataset.softphoneCall : "";
    if (callSid && !calling && sessionStorage.getItem(TRIED) !== callSid) connect(callSid);
  }

  // -- staying on the page while the browser's call goes on ------------------------------------------

  function ours(url) {
    return url.origin === window.location.origin && url.pathname.indexOf("/console/") === 0 &&
      !/\.(csv|mp3|wav)$/.test(url.pathname) && url.pathname !== "/console/sign-out";
  }

  // The page at `url` (fetched with `init`) put in place of this one's parts; `again`: the form used,
  // whose counterpart in the new page gets the focus.
  function follow(url, init, again, push) {
    return fetch(url, Object.assign({credentials: "same-origin"}, init)).then(function (response) {
      const type = response.headers.get("Content-Type") || "";
      if (type.indexOf("text/html") !== 0) { window.location.assign(response.url); return; }
      return response.text().then(function (html) {
        const page = new DOMParser().parseFromString(html, "text/html");
        SWAPPED.forEach(function (selector) {
          const here = document.querySelector(selector), there = page.querySelector(selector);
          if (here && there) { here.innerHTML = there.innerHTML; here.liveKey = undefined; }
        });
        document.title = page.title;
        if (push) {
          if (!(window.history.state && window.history.state.softphone)) window.history.replaceState({softphone: true}, "");
          window.history.pushState({softphone: true}, "", response.url);
        }
        const main = document.getElementById("main");
        document.dispatchEvent(new CustomEvent("console:swapped", {detail: {root: main}}));
        const form = again ? document.querySelector('form[action="' + again + '"]') : null;
        const control = form ? form.querySelector("button:not([disabled]), select, input:not([type=hidden])") : null;
        if (control) control.focus(); else main.focus();
      });
    });
  }

  function onSubmit(event) {
    const form = event.target;
    if (!calling || event.defaultPrevented || !(form instanceof HTMLFormElement) || form.target) return;
    const url = new URL(form.action, window.location.href);
    if (!ours(url)) return;
    event.preventDefault();
    const method = (form.method || "get").toUpperCase();
    const data = new FormData(form);
    if (event.submitter && event.submitter.name) data.append(event.submitter.name, event.submitter.value);
    if (method === "GET") {
      url.search = new URLSearchParams(data).toString();
      follow(url.href, {}, null, true);
      return;
    }
    const body = form.enctype === "multipart/form-data" ? data : new URLSearchParams(data);
    follow(url.href, {method: "POST", body: body}, form.getAttribute("action"), true);
  }

  function onClick(event) {
    if (!calling || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
    if (!link || link.target || link.hasAttribute("download")) return;
    const url = new URL(link.href, window.location.href);
    if (!ours(url) || (url.pathname === window.location.pathname && url.search === window.location.search && url.hash)) return;
    event.preventDefault();
    follow(url.href, {}, null, true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    panel = document.getElementById("softphone");
    if (!panel) return;
    panel.querySelector("#softphone-hangup").addEventListener("click", function () { if (live) live.hangup(); });
    document.addEventListener("submit", onSubmit);
    document.addEventListener("click", onClick);
    window.addEventListener("popstate", function (event) {
      if (!event.state || !event.state.softphone) return;  // a fragment of this page (the skip link)
      if (calling) follow(window.location.href, {}, null, false);
      else window.location.reload();
    });
    window.addEventListener("beforeunload", function (event) {
      if (calling) event.preventDefault();  // leaving the page would end the call
    });
    check();
    setInterval(check, CHECK_MS);
  });
})();
