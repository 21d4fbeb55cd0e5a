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
// upload progress events are available. On success the server answers with
// the page to go to; on an error, with the form page and its message, whose
// main part replaces ours.
function bindUpload(form) {
  form.addEventListener("submit", (ev) => {
    const bar = document.getElementById("upload-progress");
    if (!window.XMLHttpRequest || !bar) return;
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Potluck-Upload", "xhr");
    bar.hidden = false;
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; });
    xhr.addEventListener("load", () => {
      if (xhr.status === 200 && xhr.responseText.startsWith("/ui/")) { window.location = xhr.responseText; return; }
      const doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const main = doc.querySelector("main");
      if (!main) {
        document.querySelector("main").textContent = "Upload failed: HTTP " + xhr.status + " " + xhr.responseText;
        return;
      }
      document.querySelector("main").replaceWith(main);
      const again = document.getElementById("app-form");
      if (again) bindUpload(again);
    });
    xhr.addEventListener("error", () => {
      bar.hidden = true;
      button.disabled = false;
      window.alert("Upload failed: the connection to the core was lost.");
    });
    button.disabled = true;
    xhr.send(new FormData(form));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(liveLoop);
  bindConfirms(document);
  const up = document.getElementById("app-form");
  if (up) bindUpload(up);
});
