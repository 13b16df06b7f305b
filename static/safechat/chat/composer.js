// The composer: post (with a pending item until the server acknowledges), reply in a
// thread, edit one's own message; the typing indicator, both ways. Owns the mode.
import { initAutocomplete } from "./autocomplete.js";
import { h, byId } from "./dom.js";
import { messageEl, ownTextOf, lastOwnMessageId, scrollToBottom, markSaving, clearSaving, hideEmpty } from "./messages.js";
import { announce, clearError, showError } from "./notifications.js";
import { config, current, FRAME, me, isCurrent } from "./page.js";
import { nameOf } from "./people.js";
import * as socket from "./socket.js";

const TYPING_SEND_EVERY_MS = 2_000; // the server ignores typing frames sent faster
const TYPING_SHOWN_MS = 5_000;

const pending = new Map(); // client id -> { element, text, parentId, sent, countdown }
const awaiting = new Map(); // message id (acked) -> pending element, until message.new comes
const typingTimers = new Map(); // user id -> timeout
let clientSeq = 0;
let lastTypingSent = 0;
let mode = { kind: "post" }; // or { kind: "edit", messageId } / { kind: "reply", parentId }
let savedDraft = "";
let returnFocus = null;

const input = () => byId("composer-input");

// The server's limits (rooms.views: the message text's UTF-8 bytes, and the frame the
// socket reads): a post over either is refused here, with the server's own reason, and
// never sent (a frame over the socket's limit would close it, leaving "Not confirmed").
const MAX_BYTES = config.limits.message_bytes;
const MAX_FRAME_BYTES = config.limits.frame_bytes;
const COUNT_FROM = 0.75; // the counter shows from three quarters of the limit
const utf8 = new TextEncoder();
const kib = (bytes) => String(Math.round((bytes / 1024) * 10) / 10);
const tooLong = (bytes) =>
  `this message is too long (${kib(bytes)} KiB): a message may be at most ` +
  `${MAX_BYTES / 1024} KiB of text; shorten it, or share it as a file`;
let wasOver = false;

// The length a frame carrying ``text`` would have: the text's bytes, or the frame's if a
// text full of characters JSON escapes makes the frame the larger concern.
function overLimit(frame) {
  const bytes = utf8.encode(frame.text).length;
  if (bytes > MAX_BYTES) return tooLong(bytes);
  if (utf8.encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES) return tooLong(bytes);
  return null;
}

// The counter under the composer: hidden while short, "12.5 of 16 KiB" near the limit,
// "Too long: 70 KiB of 16 KiB" past it (the box then aria-invalid); crossing the limit is
// announced once.
function updateCount() {
  const box = input();
  const count = byId("composer-count");
  if (!box || !count) return;
  const bytes = utf8.encode(box.value).length;
  const over = bytes > MAX_BYTES;
  count.hidden = bytes < MAX_BYTES * COUNT_FROM;
  count.classList.toggle("over", over);
  count.textContent = over
    ? `Too long: ${kib(bytes)} KiB of ${MAX_BYTES / 1024} KiB. Shorten it, or share it as a file.`
    : `${kib(bytes)} of ${MAX_BYTES / 1024} KiB`;
  if (over) box.setAttribute("aria-invalid", "true");
  else box.removeAttribute("aria-invalid");
  if (over && !wasOver) announce(`Your message is too long: at most ${MAX_BYTES / 1024} KiB.`);
  wasOver = over;
}

export const isEditing = (messageId) => mode.kind === "edit" && mode.messageId === Number(messageId);

function newClientId() {
  clientSeq += 1;
  const random = crypto.randomUUID ? crypto.randomUUID() : Math.random().toString(36).slice(2);
  return `c${clientSeq}-${random}`.slice(0, 64);
}

function pendingItem(clientId, text, parentId) {
  const status = h("span", { class: "msg-status" }, "Sending…");
  const item = h(
    "li",
    { class: "message-item pending", dataset: { clientId } },
    h(
      "article",
      { class: "msg own" },
      h("header", { class: "msg-meta" }, h("bdi", { class: "msg-sender" }, me.name || me.username), " ", status),
      h("div", { class: "msg-body", dir: "auto" }, h("p", { class: "msg-plain" }, text)),
    ),
  );
  const thread = parentId ? messageEl(parentId)?.querySelector(":scope > ol.thread") : null;
  if (thread) {
    thread.append(item);
    thread.hidden = false;
  } else {
    byId("message-list").append(item);
  }
  hideEmpty();
  return item;
}

function setPendingStatus(entry, text, actions = []) {
  const status = entry.element.querySelector(".msg-status");
  status.replaceChildren(text, ...actions.flatMap((a) => [" ", a]));
}

// A post keeps its client id when sent again, so the server stores it once at most.
function post(text, parentId, clientId = newClientId()) {
  const entry = { element: pendingItem(clientId, text, parentId), text, parentId, sent: false };
  pending.set(clientId, entry);
  sendPending(clientId, entry);
  scrollToBottom();
}

function sendPending(clientId, entry) {
  const frame = { type: FRAME.MESSAGE_POST, room_id: current.id, text: entry.text, client_id: clientId };
  if (entry.parentId) frame.parent_id = entry.parentId;
  entry.sent = socket.send(frame);
  setPendingStatus(entry, entry.sent ? "Sending…" : "Waiting for the connection…");
}

export function flushOutbox() {
  for (const [clientId, entry] of pending) {
    if (!entry.sent) sendPending(clientId, entry);
  }
}

// A post that is no longer pending but not stored (or not known to be): it stays in
// place, with its text, until the person sends it again (same client id: stored once at
// most) or discards it.
function offerResend(clientId, entry, status, retry = true) {
  pending.delete(clientId);
  const again = h("button", { type: "button", class: "link" }, "Send again");
  const discard = h("button", { type: "button", class: "link" }, "Discard");
  const done = () => clearInterval(entry.countdown);
  again.addEventListener("click", () => {
    done();
    clearError();
    entry.element.remove();
    post(entry.text, entry.parentId, clientId);
  });
  discard.addEventListener("click", () => {
    done();
    entry.element.remove();
    input()?.focus();
  });
  entry.element.classList.add("failed");
  // A refusal that sending again cannot change (too long, not allowed) offers no retry.
  setPendingStatus(entry, status, retry ? [again, discard] : [discard]);
  return again;
}

// The socket closed before these were acknowledged: they may or may not be stored.
export function markUnconfirmed() {
  for (const [clientId, entry] of pending) {
    if (!entry.sent) continue;
    offerResend(clientId, entry, "Not confirmed: it appears above if it was delivered.");
  }
}

const tooMany = (seconds) => `Too many messages: try again in ${seconds} s`;

// A post the rate limit refused: not stored. It is never sent again on its own (a
// message arriving later than its author chose can mislead); it waits, with its text,
// for "Send again", and the wait counts down until then.
function markRateLimited(clientId, entry, retryAfter) {
  const seconds = Math.max(1, Math.ceil(Number(retryAfter) || 1));
  const again = offerResend(clientId, entry, `${tooMany(seconds)}.`);
  const status = entry.element.querySelector(".msg-status");
  const label = status.firstChild; // the text before the buttons
  const until = Date.now() + seconds * 1000;
  entry.countdown = setInterval(() => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left > 0) {
      label.textContent = `${tooMany(left)}.`;
      return;
    }
    clearInterval(entry.countdown);
    label.textContent = "Not sent (too many messages): you can send it again now.";
    if (again.isConnected) announce("You can send your message again now.");
  }, 1000);
}

export function onAck(clientId, messageId) {
  const entry = pending.get(clientId);
  if (!entry) return;
  pending.delete(clientId);
  if (messageEl(messageId)) {
    entry.element.remove(); // message.new came first
  } else {
    setPendingStatus(entry, "Sent");
    awaiting.set(messageId, entry.element);
  }
}

// The stored message arrived: its pending stand-in goes.
export function dropPlaceholder(messageId) {
  awaiting.get(messageId)?.remove();
  awaiting.delete(messageId);
}

const RETRYABLE = new Set(["server_error"]);

export function onErrorFrame(frame) {
  const entry = frame.client_id ? pending.get(frame.client_id) : null;
  const box = input();
  clearSaving();
  if (entry && frame.code === "rate_limited") {
    // Kept where it was, with its text and "Send again": nothing typed is lost.
    markRateLimited(frame.client_id, entry, frame.retry_after);
    const seconds = Math.max(1, Math.ceil(Number(frame.retry_after) || 1));
    showError(`${tooMany(seconds)}. Your message was not sent; it is kept with “Send again”`);
    return;
  }
  if (entry) {
    if (box && !box.value.trim()) {
      // Give the text back to the empty composer, to correct and send.
      pending.delete(frame.client_id);
      entry.element.remove();
      box.value = entry.text;
      updateCount();
      if (entry.parentId) startReply(entry.parentId);
    } else {
      // The composer holds something new: the refused text stays in place instead. Only a
      // fault of ours may go another time; a refusal would be refused again.
      const retry = RETRYABLE.has(frame.code);
      offerResend(frame.client_id, entry, `Not sent: ${frame.detail || frame.code}.`, retry);
    }
  }
  showError(frame.detail || frame.code);
}

function setContext(text) {
  const box = byId("composer-context");
  box.hidden = !text;
  byId("composer-context-text").textContent = text || "";
}

export function startReply(parentId, trigger = null) {
  const root = messageEl(parentId);
  const sender = root?.querySelector(".msg-sender")?.textContent ?? "a message";
  if (mode.kind === "edit") cancelMode();
  mode = { kind: "reply", parentId: Number(parentId) };
  returnFocus = trigger;
  setContext(`Replying in thread to ${sender}`);
  input().focus();
}

export function startEdit(messageId, trigger = null) {
  const text = ownTextOf(messageId);
  if (text === undefined) {
    showError("this message cannot be edited any more");
    return;
  }
  const box = input();
  if (mode.kind !== "edit") savedDraft = box.value;
  mode = { kind: "edit", messageId: Number(messageId) };
  returnFocus = trigger;
  setContext("Editing your message");
  box.value = text;
  updateCount();
  box.focus();
  box.setSelectionRange(text.length, text.length);
}

export function cancelMode() {
  const wasEdit = mode.kind === "edit";
  mode = { kind: "post" };
  setContext("");
  if (wasEdit) input().value = savedDraft;
  savedDraft = "";
  updateCount();
  clearError();
  const target = returnFocus;
  returnFocus = null;
  (target && target.isConnected ? target : input()).focus();
}

function submitComposer() {
  const box = input();
  const text = box.value;
  if (!text.trim()) return;
  clearError();
  const refused = overLimit({ type: FRAME.MESSAGE_POST, room_id: current.id, text, client_id: "c".repeat(64) });
  if (refused) {
    // Kept in the box, to shorten: nothing is sent, nothing pending.
    updateCount();
    box.setAttribute("aria-invalid", "true");
    showError(refused);
    return;
  }
  if (mode.kind === "edit") {
    const id = mode.messageId;
    if (text !== ownTextOf(id)) {
      if (!socket.send({ type: FRAME.MESSAGE_EDIT, message_id: id, text })) {
        showError("not connected: your edit was not saved, try again when connected");
        return;
      }
      markSaving(id);
    }
    box.value = savedDraft;
    savedDraft = "";
    updateCount();
    mode = { kind: "post" };
    setContext("");
    returnFocus = null;
    return;
  }
  post(text, mode.kind === "reply" ? mode.parentId : null);
  box.value = "";
  updateCount();
  if (mode.kind === "reply") {
    mode = { kind: "post" };
    setContext("");
    returnFocus = null;
  }
}

function renderTyping() {
  const box = byId("typing-indicator");
  if (!box) return;
  const names = [...typingTimers.keys()].map(nameOf);
  box.textContent =
    names.length === 0 ? ""
    : names.length === 1 ? `${names[0]} is typing…`
    : names.length === 2 ? `${names[0]} and ${names[1]} are typing…`
    : "Several people are typing…";
}

export function clearTyping(userId) {
  if (!typingTimers.has(userId)) return;
  clearTimeout(typingTimers.get(userId));
  typingTimers.delete(userId);
  renderTyping();
}

export function onTyping(roomId, userId) {
  if (!isCurrent(roomId) || userId === me.id) return;
  clearTimeout(typingTimers.get(userId));
  typingTimers.set(userId, setTimeout(() => clearTyping(userId), TYPING_SHOWN_MS));
  renderTyping();
}

export function initComposer() {
  // Escape leaves edit or reply mode from anywhere (the composer handles its own).
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && mode.kind !== "post" && event.target !== input()) cancelMode();
  });
  const composer = byId("composer");
  if (!composer) return;
  const box = input();
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitComposer();
    box.focus();
  });
  byId("composer-cancel").addEventListener("click", cancelMode);
  initAutocomplete(box); // first: a key it handles (defaultPrevented) is not the composer's
  box.addEventListener("keydown", (event) => {
    if (event.defaultPrevented) return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitComposer();
    } else if (event.key === "Escape") {
      if (mode.kind !== "post") {
        event.preventDefault();
        cancelMode();
      } else {
        clearError();
      }
    } else if (event.key === "ArrowUp" && !box.value && mode.kind === "post") {
      const id = lastOwnMessageId();
      if (id !== null) {
        event.preventDefault();
        startEdit(id);
      }
    }
  });
  box.addEventListener("input", () => {
    updateCount();
    const now = Date.now();
    if (mode.kind === "edit" || !box.value.trim() || now - lastTypingSent < TYPING_SEND_EVERY_MS) return;
    if (socket.send({ type: FRAME.TYPING, room_id: current.id })) lastTypingSent = now;
  });
}
