// Sharing files: the "Attach" button, files dropped on the messages or the composer, and
// files pasted into the message box. Each goes up over tus (tus-js-client, vendored under
// static/vendor/tus-js-client/, loaded before this module as the global `tus`) to the
// room's creation URL, with the session and the CSRF token like every other request,
// with a progress bar; a dropped connection is retried, and the upload resumes from the
// offset the server kept (HEAD), not from the start. Once every byte is in, the server
// scans the file: the upload's state (HEAD, SafeChat-Upload-State) tells this list
// whether it was shared or refused, and, while it is pending, whether a scanner is there
// to scan it (SafeChat-Scanner); the file itself arrives as a message (message.new).
import { byId, h, hidden, sentence } from "./dom.js";
import { announce } from "./notifications.js";
import { config, csrfToken } from "./page.js";
import { sizeText } from "./messages.js";

const RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
const SCAN_POLL_MS = 2000;
const SCAN_POLL_LIMIT = 90; // three minutes, then "still being scanned"
// No scanner can scan now (not configured, or not answering): ask less often, and for as
// long as the page is open; the file is shared once a scanner has scanned it.
const SCANNER_WAIT_POLL_MS = 15000;
const WAITING_FOR_SCANNER = "Waiting for the malware scanner: the file becomes available once it is scanned.";

const entries = new Map(); // file id (the upload URL's last part) -> its row

const list = () => byId("uploads");

function setStatus(row, text, { done = false, failed = false } = {}) {
  row.querySelector(".upload-status").textContent = text;
  row.classList.toggle("done", done);
  row.classList.toggle("failed", failed);
}

function uploadRow(file) {
  const bar = h("progress", { class: "upload-progress", max: "100", value: "0", "aria-label": `Uploading ${file.name}` });
  const cancel = h("button", { type: "button", class: "link upload-cancel" }, "Cancel", hidden(` uploading ${file.name}`));
  const row = h(
    "li",
    { class: "upload" },
    h("span", { class: "upload-name" }, h("bdi", {}, file.name), " ", h("span", { class: "muted" }, sizeText(file.size))),
    bar,
    h("span", { class: "upload-status", "aria-live": "polite" }, "Starting…"),
    cancel,
  );
  list().hidden = false;
  list().append(row);
  return { row, bar, cancel };
}

function removeLater(row, ms = 4000) {
  setTimeout(() => {
    row.remove();
    if (!list().children.length) list().hidden = true;
  }, ms);
}

// After the last byte: ask the server how the scan went (SafeChat-Upload-State), and
// whether a scanner is there to scan it (SafeChat-Scanner).
async function followScan(url, row, name) {
  let waitingSaid = false;
  for (let attempt = 0; attempt < SCAN_POLL_LIMIT; attempt += 1) {
    let state = "";
    let scanner = "";
    try {
      const response = await fetch(url, {
        method: "HEAD",
        // Asked by the page on its own: not the person's activity (session idle clock).
        headers: { "Tus-Resumable": "1.0.0", "X-SafeChat-Background": "1" },
        credentials: "same-origin",
        cache: "no-store",
      });
      state = response.headers.get("SafeChat-Upload-State") || "";
      scanner = response.headers.get("SafeChat-Scanner") || "";
    } catch {
      // the connection dropped: ask again at the next turn
    }
    if (state === "available") {
      setStatus(row, "Shared", { done: true });
      announce(`${name} shared.`);
      removeLater(row);
      return;
    }
    if (state === "infected") {
      setStatus(row, "Refused: the malware scan found a threat in this file.", { failed: true });
      announce(`${name} was refused: the malware scan found a threat.`);
      return;
    }
    if (state === "withheld") {
      setStatus(row, "Not shared: the room was archived, or you may no longer share files in it.", {
        failed: true,
      });
      announce(`${name} was not shared.`);
      return;
    }
    if (state && state !== "pending_scan") {
      setStatus(row, "This upload is no longer available.", { failed: true });
      return;
    }
    if (state === "pending_scan" && scanner === "unavailable") {
      if (!waitingSaid) {
        waitingSaid = true;
        setStatus(row, WAITING_FOR_SCANNER);
        announce(`${name}: waiting for the malware scanner; it becomes available once scanned.`);
      }
      attempt = -1; // not counted: the wait ends with the scanner, not with a deadline
      await new Promise((resolve) => setTimeout(resolve, SCANNER_WAIT_POLL_MS));
      continue;
    }
    if (waitingSaid) {
      waitingSaid = false;
      setStatus(row, "Scanning for malware…");
    }
    await new Promise((resolve) => setTimeout(resolve, SCAN_POLL_MS));
  }
  setStatus(row, "Still being scanned; it will appear here once clean.");
}

function start(file) {
  const upload = config.upload;
  if (file.size > upload.max_bytes) {
    const { row, cancel } = uploadRow(file);
    cancel.remove();
    setStatus(row, `Too large: files are at most ${sizeText(upload.max_bytes)}.`, { failed: true });
    return;
  }
  const { row, bar, cancel } = uploadRow(file);
  const metadata = { filename: file.name };
  if (file.type) metadata.filetype = file.type;
  const tusUpload = new window.tus.Upload(file, {
    endpoint: upload.endpoint,
    chunkSize: upload.chunk_bytes,
    metadata,
    headers: { "X-CSRFToken": csrfToken },
    retryDelays: RETRY_DELAYS_MS,
    // A page reloaded mid-upload finds the upload again (by file name, size, type and
    // date, kept in this browser's storage) and resumes it.
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onProgress(sent, total) {
      const percent = total ? Math.floor((sent / total) * 100) : 100;
      bar.value = percent;
      setStatus(row, `${percent}% of ${sizeText(total)}`);
    },
    onShouldRetry(error) {
      // Retry what the network lost or the server could not do now; not a refusal.
      const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
      const again = status === 0 || status === 409 || status === 423 || status >= 500;
      if (again) setStatus(row, "Connection lost; resuming…");
      return again;
    },
    onError(error) {
      const response = error.originalResponse;
      let detail = "the upload failed";
      try {
        detail = JSON.parse(response.getBody()).detail || detail;
      } catch {
        // keep the generic detail
      }
      setStatus(row, `Failed: ${sentence(detail)}`, { failed: true });
      cancel.textContent = "Dismiss";
      cancel.onclick = () => row.remove();
    },
    onSuccess() {
      bar.value = 100;
      cancel.remove();
      setStatus(row, "Scanning for malware…");
      const id = tusUpload.url.split("/").pop();
      entries.set(id, row);
      followScan(tusUpload.url, row, file.name);
    },
  });
  cancel.addEventListener("click", () => {
    tusUpload.abort(true); // true: also end it on the server (tus termination)
    setStatus(row, "Cancelled", { failed: true });
    cancel.remove();
    removeLater(row, 1500);
  });
  tusUpload.findPreviousUploads().then((previous) => {
    if (previous.length) tusUpload.resumeFromPreviousUpload(previous[0]);
    tusUpload.start();
  });
}

export function uploadFiles(files) {
  if (!config.upload || !window.tus) return;
  for (const file of files) start(file);
}

// A message sharing a file arrived: the upload that made it is done, and a scanner is
// scanning again (the room's "Waiting for the malware scanner" no longer holds).
export function onFileShared(fileId) {
  byId("scan-waiting")?.remove();
  const row = entries.get(fileId);
  if (!row) return;
  entries.delete(fileId);
  setStatus(row, "Shared", { done: true });
  removeLater(row);
}

function dropTarget(element) {
  if (!element) return;
  element.addEventListener("dragover", (event) => {
    if (![...(event.dataTransfer?.types ?? [])].includes("Files")) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    element.classList.add("dropping");
  });
  element.addEventListener("dragleave", () => element.classList.remove("dropping"));
  element.addEventListener("drop", (event) => {
    element.classList.remove("dropping");
    const files = event.dataTransfer?.files;
    if (!files || !files.length) return;
    event.preventDefault();
    uploadFiles(files);
  });
}

export function initUploads() {
  const picker = byId("composer-files");
  const attach = byId("composer-attach");
  if (!picker || !attach || !config.upload) return;
  attach.addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    uploadFiles(picker.files);
    picker.value = "";
  });
  dropTarget(byId("message-scroller"));
  dropTarget(byId("composer"));
  byId("composer-input")?.addEventListener("paste", (event) => {
    const files = event.clipboardData?.files;
    if (!files || !files.length) return;
    event.preventDefault(); // a pasted file is shared, not its name typed
    uploadFiles(files);
  });
}
