// Lepton console: the live log tail and uploads through signed URLs. Data from the platform
// is only ever set as textContent, never parsed as HTML.
"use strict";

const MAX_LOG_LINES = 2000;

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function followLogs(pre) {
  const state = document.getElementById("log-state");
  const source = new EventSource(pre.dataset.stream);
  source.addEventListener("open", () => {
    pre.textContent = "";  // a reconnect sends the tail again
    state.textContent = "live";
    state.className = "live on";
  });
  source.addEventListener("message", (event) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const line = document.createElement("div");
    line.className = "line";
    line.textContent = event.data;
    pre.appendChild(line);
    while (pre.childElementCount > MAX_LOG_LINES) pre.firstElementChild.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("error", () => {
    state.textContent = source.readyState === EventSource.CLOSED ? "stopped" : "reconnecting…";
    state.className = "live off";
  });
}

async function upload(form) {
  const file = document.getElementById("upload-file").files[0];
  const keyInput = document.getElementById("upload-key");
  const status = document.getElementById("upload-state");
  if (!file) return;
  const key = keyInput.value.trim() || (keyInput.dataset.prefix || "") + file.name;
  status.textContent = "uploading…";
  try {
    const signed = await fetch(form.dataset.url, {
      method: "POST",
      headers: {"content-type": "application/json", "accept": "application/json", "x-csrf-token": csrfToken()},
      body: JSON.stringify({key}),
    });
    const answer = await signed.json();
    if (!signed.ok) throw new Error(answer.detail || signed.statusText);
    const put = await fetch(answer.url, {method: "PUT", body: file, headers: {"content-type": file.type || "application/octet-stream"}});
    if (!put.ok) throw new Error((await put.json().catch(() => ({}))).detail || put.statusText);
    status.textContent = "uploaded " + key;
    window.location.reload();
  } catch (error) {
    status.textContent = "upload failed: " + error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (log) followLogs(log);
  const form = document.getElementById("upload");
  if (form) form.addEventListener("submit", (event) => { event.preventDefault(); upload(form); });
});
