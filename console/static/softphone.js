// The console's softphone: when the agent (answering in this browser) has taken a caller, the state
// bar names that caller (data-softphone-call) and this connects to them with the platform's own SDK,
// vendored under static/vendor/ (Twilio's Voice JavaScript SDK, or Plivo's Browser SDK): a token from
// the helpline, then a call whose parameter names the caller; the platform asks the helpline's
// voice webhook, which puts this leg into the caller's room. Mute is the SDK's own.
"use strict";
(function () {
  const CHECK_MS = 1000;
  const TRIED = "softphone-call";  // the caller this tab connected to (once: a reload does not ring again)
  let panel = null;
  let live = null;  // {mute(bool), hangup()} of the call in progress

  function say(what) {
    const status = panel.querySelector("#softphone-status");
    status.textContent = panel.dataset["said" + what];
    panel.dataset.state = what.toLowerCase();
  }

  function controls(enabled) {
    panel.querySelector("#softphone-mute").disabled = !enabled;
    panel.querySelector("#softphone-hangup").disabled = !enabled;
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
    controls(false);
    say(why || "Failed");
    post(panel.dataset.failedUrl, {call: callSid}).catch(function () { /* the claim runs out by itself */ });
  }

  function connected(handle) {
    live = handle;
    controls(true);
    say("OnCall");
  }

  function ended() {
    live = null;
    controls(false);
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
        connected({mute: function (on) { call.mute(on); }, hangup: function () { call.disconnect(); }});
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
      connected({
        mute: function (on) { if (on) { client.mute(); } else { client.unmute(); } },
        hangup: function () { client.hangup(); },
      });
    });
    client.on("onCallTerminated", function () { gone(false); });
    client.loginWithAccessToken(token);
  }

  function connect(callSid) {
    sessionStorage.setItem(TRIED, callSid);
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
    if (callSid && !live && sessionStorage.getItem(TRIED) !== callSid) connect(callSid);
  }

  document.addEventListener("DOMContentLoaded", function () {
    panel = document.getElementById("softphone");
    if (!panel) return;
    const mute = panel.querySelector("#softphone-mute");
    mute.addEventListener("click", function () {
      if (!live) return;
      const on = mute.getAttribute("aria-pressed") !== "true";
      live.mute(on);
      mute.setAttribute("aria-pressed", on ? "true" : "false");
      if (on) say("Muted"); else say("OnCall");
    });
    panel.querySelector("#softphone-hangup").addEventListener("click", function () { if (live) live.hangup(); });
    window.addEventListener("beforeunload", function (event) {
      if (live) event.preventDefault();  // leaving the page would end the call
    });
    check();
    setInterval(check, CHECK_MS);
  });
})();
