// Potluck UI: live lists (blocking queries), confirmations, upload progress.
// Plain JS, no build step; served from /ui/static/ under a strict CSP.
"use strict";

// Live lists: ask the server for the table again, holding until the state
// index moves past the one shown (a blocking query on the core's API).
function liveLoop(el) {
  let index = el.dataset.index || "0";
  const status = document.getElementById("live-status");
  const tick = async () => {
    try {
      const resp = await fetch(el.dataset.live + "&index=" + index + "&wait=30s", {credentials: "same-origin"});
      if (resp.status === 401) { window.location = "/ui/login"; return; }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const html = await resp.text();
      index = resp.headers.get("X-Potluck-Index") || index;
      el.innerHTML = html;
      bindConfirms(el);
      if (status) { status.textContent = "live"; status.className = ""; }
      setTimeout(tick, 250);
    } catch (e) {
      if (status) { status.textContent = "reconnecting"; status.className = "warn"; }
      setTimeout(tick, 5000);
    }
  };
  setTimeout(tick, 250);
}

function bindConfirms(root) {
  root.querySelectorAll("form[data-confirm]").forEach((f) => {
    if (f.dataset.bound) return;
    f.dataset.bound = "1";
    f.addEventListener("submit", (ev) => { if (!window.confirm(f.dataset.confirm)) ev.preventDefault(); });
  });
}

// Upload with a progress bar: the same multipart POST, sent by XHR so that
// upload progress events are available; the answer replaces the page.
function bindUpload(form) {
  const bar = document.getElementById("upload-progress");
  form.addEventListener("submit", (ev) => {
    if (!window.XMLHttpRequest || !bar) return;
    ev.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; });
    xhr.addEventListener("load", () => {
      if (xhr.status < 400 && xhr.responseURL) { window.location = xhr.responseURL; return; }
      document.open(); document.write(xhr.responseText); document.close();
    });
    xhr.addEventListener("error", () => { bar.hidden = true; window.alert("Upload failed: connection lost."); });
    form.querySelector("button[type=submit]").disabled = true;
    xhr.send(new FormData(form));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(liveLoop);
  bindConfirms(document);
  const up = document.getElementById("app-form");
  if (up) bindUpload(up);
});
