// The message list: the one place a wire message (rooms/wire.py: WireMessage) becomes
// DOM, threads, live updates, older pages, read markers and the actions on a message.
// Owns the texts of one's own messages (for editing). It imports no module that imports
// it: what the composer does about a message comes through the hooks main.js gives
// initMessages(). (Hashed static names need an import graph without cycles.)
import { api } from "./api.js";
import { h, hidden, byId } from "./dom.js";
import { announce, showError } from "./notifications.js";
import { current, FRAME, isCurrent, me } from "./page.js";
import { openCard } from "./profilecard.js";
import { openPicker, toggleReaction } from "./reactions.js";
import { bumpUnread, setUnread } from "./rooms.js";
import * as socket from "./socket.js";
import { noteSeen } from "./sync.js";
import { initListNav, focusMessage, messageArticles } from "./listnav.js";
import { dayKey, dayLabel, localiseTimes, timeEl } from "./times.js";

const ownTexts = new Map(
  Object.entries(current?.own_texts ?? {}).map(([id, text]) => [Number(id), text]),
);
let lastReadSent = current?.last_read ?? 0;
// reply(parentId, trigger), edit(messageId, trigger), arrived(message), deleted(messageId)
let hooks = { reply() {}, edit() {}, arrived() {}, deleted() {} };

const COLLAPSE_ABOVE_PX = 320; // taller messages are collapsed until "Show more"
const TIMES_EVERY_MS = 60_000; // "5 min ago" kept true

const list = () => byId("message-list");
const scroller = () => byId("message-scroller");
export const messageEl = (id) => byId(`message-${id}`);
export const ownTextOf = (id) => ownTexts.get(Number(id));

export function lastOwnMessageId() {
  const ids = [...ownTexts.keys()].filter((id) => messageEl(id));
  return ids.length ? Math.max(...ids) : null;
}

export function markSaving(id) {
  messageEl(id)?.querySelector(":scope > article")?.classList.add("saving");
}

export function clearSaving() {
  list()?.querySelectorAll("article.saving").forEach((a) => a.classList.remove("saving"));
}

export function hideEmpty() {
  byId("message-empty")?.setAttribute("hidden", "");
}

function setBody(body, message) {
  if (message.text_status === "integrity_failure") {
    body.replaceChildren(
      h(
        "p",
        { class: "msg-unreadable msg-tampered" },
        "This message failed its integrity check and is not shown. The security team has been notified.",
      ),
    );
  } else if (message.html === null || message.html === undefined) {
    body.replaceChildren(h("p", { class: "msg-unreadable" }, "This message can no longer be read."));
  } else {
    body.innerHTML = message.html; // sanitised by the server (nh3), the only innerHTML here
    markOwnMentions(body);
  }
}

// The server's HTML is the same for every reader: the reader's own mentions are told
// apart here (the page's first render does it on the server: rooms/wire.py).
function markOwnMentions(body) {
  body.querySelectorAll(`span.mention[data-user-id="${Number(me.id)}"]`).forEach((s) => s.classList.add("mention-me"));
}

export const mentionsMe = (message) => (message.mentions ?? []).includes(me.id);

function senderLabel(message) {
  return [
    h(
      "button",
      { type: "button", class: "msg-sender-button", dataset: { action: "profile" }, "aria-haspopup": "dialog", "aria-expanded": "false" },
      h("bdi", { class: "msg-sender" }, message.sender_name || message.sender),
    ),
    " ",
    h("span", { class: "msg-username" }, "@", h("bdi", {}, message.sender)),
  ];
}

// Rebuilding the chips would drop the focus of the one just pressed to the page body:
// it goes back to the chip of the same emoji, or, if that is gone, to the message.
function reactionButtons(container, reactions) {
  const focused = container.contains(document.activeElement) ? document.activeElement.dataset.emoji : null;
  container.replaceChildren(
    ...Object.entries(reactions || {}).map(([emoji, userIds]) =>
      h(
        "button",
        {
          type: "button",
          class: "reaction",
          dataset: { emoji },
          "aria-pressed": userIds.includes(me.id) ? "true" : "false",
          "aria-label": `${emoji} reaction, ${userIds.length}`,
        },
        `${emoji} ${userIds.length}`,
      ),
    ),
  );
  if (focused === null) return;
  const again = [...container.children].find((b) => b.dataset.emoji === focused);
  (again ?? container.closest("article")).focus({ preventScroll: true });
}

// Long messages show their first lines and a "Show more" button (aria-expanded).
function collapseIfLong(article) {
  const body = article.querySelector(":scope > .msg-body");
  article.querySelector(":scope > .show-more")?.remove();
  body.classList.remove("collapsed");
  if (body.scrollHeight <= COLLAPSE_ABOVE_PX) return;
  body.classList.add("collapsed");
  body.after(
    h("button", { type: "button", class: "link show-more", "aria-expanded": "false", "aria-controls": body.id }, "Show more"),
  );
}

function toggleCollapsed(button) {
  const body = button.closest("article").querySelector(":scope > .msg-body");
  const expand = body.classList.contains("collapsed");
  body.classList.toggle("collapsed", !expand);
  button.setAttribute("aria-expanded", String(expand));
  button.textContent = expand ? "Show less" : "Show more";
}

// A heading per day, before its first message (in the reader's time zone).
function renderDays() {
  const l = list();
  l.querySelectorAll(":scope > .day-separator").forEach((n) => n.remove());
  let last = null;
  for (const item of [...l.querySelectorAll(":scope > .message-item[data-message-id]")]) {
    const iso = item.querySelector(":scope > article time[datetime]")?.getAttribute("datetime");
    const key = iso ? dayKey(iso) : null;
    if (key === null || key === last) continue;
    last = key;
    l.insertBefore(h("li", { class: "day-separator" }, h("h2", {}, dayLabel(iso))), item);
  }
}

// What a screen reader hears of a message: its text as shown, not its Markdown.
function plainText(item) {
  const body = item.querySelector(":scope > article > .msg-body").textContent.replace(/\s+/g, " ").trim();
  const file = item.querySelector(":scope > article > .msg-file .msg-file-name bdi")?.textContent;
  return file ? `shared ${file}${body ? `, ${body}` : ""}` : body;
}

// "1.4 MB": a size as the server's page writes it (Django's filesizeformat: steps of 1024).
export function sizeText(bytes) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} ${value === 1 ? "byte" : "bytes"}` : `${value.toFixed(1)} ${units[unit]}`;
}

// A message's file (WireAttachment): its preview, name (a download link), size,
// uploader and SHA-256 (short, the whole in the details). Mirrors
// templates/rooms/_attachment.html. The URLs need the session: same origin only.
function attachmentEl(attachment) {
  if (!attachment) return null;
  const name = h("bdi", {}, attachment.name);
  const preview = attachment.preview_url
    ? h(
        "a",
        { class: "msg-file-preview-link", href: attachment.download_url, download: true, tabindex: "-1" },
        h("img", { class: "msg-file-preview", src: attachment.preview_url, alt: `Preview of ${attachment.name}` }),
      )
    : null;
  return h(
    "figure",
    { class: "msg-file", dataset: { fileId: attachment.id } },
    preview,
    h(
      "figcaption",
      { class: "msg-file-meta" },
      h("a", { class: "msg-file-name", href: attachment.download_url, download: true }, name, hidden(" (download)")),
      " ",
      h("span", { class: "msg-file-size" }, sizeText(attachment.size)),
      " ",
      h("span", { class: "msg-file-uploader" }, "shared by ", h("bdi", {}, attachment.uploader)),
      " ",
      h(
        "details",
        { class: "msg-file-hash" },
        h("summary", { title: `SHA-256 ${attachment.sha256}` }, "SHA-256 ", h("code", {}, `${attachment.sha256.slice(0, 12)}…`)),
        h("code", { class: "msg-file-digest" }, attachment.sha256),
      ),
    ),
  );
}

function messageActions(message) {
  if (!current?.can.post) return null;
  const own = message.sender_id === me.id;
  return h(
    "div",
    { class: "msg-actions" },
    h("button", { type: "button", dataset: { action: "reply" } }, "Reply", hidden(` in thread to ${message.sender_name || message.sender}`)),
    h(
      "button",
      { type: "button", dataset: { action: "react-pick" }, "aria-haspopup": "dialog", "aria-expanded": "false" },
      "React",
      hidden(` to the message from ${message.sender_name || message.sender}`),
    ),
    own && !message.attachment
      ? h("button", { type: "button", dataset: { action: "edit" } }, "Edit", hidden(" your message"))
      : null,
    own || current.can.manage_members
      ? h("button", { type: "button", class: "danger-text", dataset: { action: "delete" } }, "Delete", hidden(` message from ${message.sender_name || message.sender}`))
      : null,
  );
}

// Builds a message's list item, or, given the item already shown, updates what can
// change: the body, the "(edited)" mark and the reactions. Mirrors
// templates/rooms/_message.html.
export function messageItem(message, shown = null) {
  if (shown) {
    const article = shown.querySelector(":scope > article");
    setBody(article.querySelector(".msg-body"), message);
    article.querySelector(".msg-edited").hidden = !message.edited_at;
    article.classList.toggle("mentions-me", mentionsMe(message));
    reactionButtons(article.querySelector(".msg-reactions"), message.reactions);
    collapseIfLong(article);
    return shown;
  }
  const metaId = `message-${message.id}-meta`;
  const body = h("div", { class: "msg-body", id: `message-${message.id}-body`, dir: "auto" });
  setBody(body, message);
  const reactions = h("div", { class: "msg-reactions" });
  reactionButtons(reactions, message.reactions);
  const article = h(
    "article",
    {
      class: ["msg", message.sender_id === me.id && "own", mentionsMe(message) && "mentions-me"].filter(Boolean).join(" "),
      tabindex: "-1",
      "aria-labelledby": metaId,
      "aria-describedby": body.id,
    },
    h(
      "header",
      { class: "msg-meta", id: metaId },
      ...senderLabel(message),
      " ",
      timeEl(message.created_at),
      " ",
      h("span", { class: "msg-edited", hidden: !message.edited_at }, "(edited)"),
    ),
    body,
    attachmentEl(message.attachment),
    reactions,
    messageActions(message),
  );
  const item = h("li", {
    class: "message-item",
    id: `message-${message.id}`,
    dataset: { messageId: message.id, senderId: message.sender_id },
  });
  item.append(article);
  if (message.parent_id) {
    item.dataset.parentId = message.parent_id;
  } else {
    item.append(h("ol", { class: "thread", "aria-label": `Replies to ${message.sender_name || message.sender}`, hidden: true }));
  }
  return item;
}

function insertOrdered(container, item) {
  const id = Number(item.dataset.messageId);
  const siblings = [...container.children].filter((c) => c.dataset.messageId);
  const after = siblings.find((c) => Number(c.dataset.messageId) > id);
  // Pending (unacknowledged) items stay at the end, after every stored message.
  const firstPending = [...container.children].find((c) => c.classList.contains("pending"));
  container.insertBefore(item, after ?? firstPending ?? null);
}

function placeMessage(item) {
  const parentId = item.dataset.parentId;
  const parent = parentId ? messageEl(parentId) : null;
  const thread = parent?.querySelector(":scope > ol.thread");
  item.querySelector(".msg-note")?.remove();
  if (thread) {
    insertOrdered(thread, item);
    thread.hidden = false;
  } else {
    if (parentId) {
      item.querySelector(".msg-meta").append(" ", h("span", { class: "msg-note" }, "reply in an earlier thread"));
    }
    insertOrdered(list(), item);
  }
  hideEmpty();
  collapseIfLong(item.querySelector(":scope > article"));
}

function nearBottom() {
  const s = scroller();
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

export function scrollToBottom() {
  const s = scroller();
  if (s) s.scrollTop = s.scrollHeight;
}

export function onMessageNew(roomId, message) {
  roomId = Number(roomId);
  const fresh = noteSeen(roomId, message);
  if (!isCurrent(roomId)) {
    if (message.sender_id !== me.id && fresh) bumpUnread(roomId);
    return;
  }
  if (message.sender_id === me.id && message.text !== null) ownTexts.set(message.id, message.text);
  hooks.arrived(message);
  if (messageEl(message.id)) {
    onMessageChanged(roomId, message);
    return;
  }
  const stick = nearBottom() || message.sender_id === me.id;
  const item = messageItem(message);
  placeMessage(item);
  renderDays();
  if (stick) scrollToBottom();
  if (message.sender_id !== me.id) {
    const said = mentionsMe(message) ? "mentioned you" : "";
    announce(`${message.sender_name || message.sender}${said ? ` ${said}` : ""}: ${plainText(item).slice(0, 280)}`);
  }
  maybeMarkRead();
}

export function onMessageChanged(roomId, message) {
  if (!isCurrent(roomId)) return;
  const item = messageEl(message.id);
  if (!item) return;
  if (message.sender_id === me.id && message.text !== null) ownTexts.set(message.id, message.text);
  item.querySelector(":scope > article").classList.remove("saving");
  messageItem(message, item);
}

export function onMessageDeleted(roomId, messageId) {
  if (!isCurrent(roomId)) return;
  ownTexts.delete(Number(messageId));
  hooks.deleted(Number(messageId));
  const item = messageEl(messageId);
  if (!item) return;
  const article = item.querySelector(":scope > article");
  // Focus inside what goes away would fall to the page body: it moves to the next
  // message (else the previous one, else the list), and the deletion is announced.
  const focusWasInside = item.contains(document.activeElement);
  const thread = item.querySelector(":scope > ol.thread");
  if (thread && thread.children.length) {
    // Keep the replies; the thread's first message reads as deleted.
    article.querySelector(".msg-body").replaceChildren(h("p", { class: "msg-unreadable" }, "This message was deleted."));
    article.querySelector(".msg-actions")?.remove();
    article.querySelector(".msg-reactions").replaceChildren();
    article.querySelector(":scope > .show-more")?.remove();
    if (focusWasInside) focusMessage(article);
  } else {
    const all = messageArticles();
    const at = all.indexOf(article);
    const gone = new Set(item.querySelectorAll("article"));
    const rest = all.filter((a) => !gone.has(a));
    const next = all.slice(at + 1).find((a) => !gone.has(a)) ?? rest.filter((a) => all.indexOf(a) < at).at(-1);
    item.remove();
    renderDays();
    if (focusWasInside && !focusMessage(next)) list().focus();
  }
  if (focusWasInside) announce("Message deleted.");
}

// Replies shown alone because their thread started before the page move under it once loaded.
function adoptOrphans() {
  for (const item of [...list().querySelectorAll(":scope > li[data-parent-id]")]) {
    if (messageEl(item.dataset.parentId)?.querySelector(":scope > ol.thread")) placeMessage(item);
  }
}

// Older messages through the REST API, keeping the reader's place.
async function loadOlder(button) {
  button.disabled = true;
  button.textContent = "Loading…";
  try {
    const before = button.dataset.before;
    const page = await api(`rooms/${current.id}/messages/?before=${encodeURIComponent(before)}&limit=50`);
    const heightBefore = scroller().scrollHeight;
    for (const message of [...page.results].reverse()) {
      if (message.sender_id === me.id && message.text !== null) ownTexts.set(message.id, message.text);
      if (!messageEl(message.id)) placeMessage(messageItem(message));
    }
    adoptOrphans();
    renderDays();
    scroller().scrollTop += scroller().scrollHeight - heightBefore;
    announce(`${page.results.length} older messages loaded`);
    if (page.next_before) {
      button.dataset.before = page.next_before;
    } else {
      button.remove();
      list().focus();
      return;
    }
  } catch (error) {
    showError(error.message);
  }
  button.disabled = false;
  button.textContent = "Load older messages";
}

// Read markers: sent when the newest message is on screen and the tab has focus.
export function maybeMarkRead() {
  if (!current || !list()) return;
  if (document.visibilityState !== "visible" || !document.hasFocus() || !nearBottom()) return;
  const ids = [...list().querySelectorAll(".message-item[data-message-id]")].map((i) =>
    Number(i.dataset.messageId),
  );
  const newest = ids.length ? Math.max(...ids) : 0;
  setUnread(current.id, 0);
  if (newest > lastReadSent && socket.send({ type: FRAME.READ, room_id: current.id, message_id: newest })) {
    lastReadSent = newest;
  }
}

// Actions by event delegation: works for server-rendered and live items alike.
function onListClick(event) {
  const more = event.target.closest(".show-more");
  if (more) {
    toggleCollapsed(more);
    return;
  }
  const link = event.target.closest(".msg-body a[href]");
  if (link) {
    // Links open only on click, in a new tab, without referrer; the chat stays open.
    event.preventDefault();
    window.open(link.href, "_blank", "noopener,noreferrer");
    return;
  }
  const button = event.target.closest("button");
  if (!button) return;
  const item = button.closest(".message-item");
  const messageId = Number(item?.dataset.messageId);
  if (!messageId) return;
  if (button.dataset.action === "profile") {
    openCard(button);
  } else if (button.classList.contains("reaction")) {
    toggleReaction(messageId, button.dataset.emoji);
  } else if (button.dataset.action === "react-pick") {
    openPicker(button, messageId);
  } else if (button.dataset.action === "reply") {
    // Threads are one level deep: a reply to a reply joins the same thread.
    hooks.reply(Number(item.dataset.parentId || messageId), button);
  } else if (button.dataset.action === "edit") {
    hooks.edit(messageId, button);
  } else if (button.dataset.action === "delete") {
    if (window.confirm("Delete this message? Members will no longer see it.")) {
      if (!socket.send({ type: FRAME.MESSAGE_DELETE, message_id: messageId })) {
        showError("not connected: the message was not deleted, try again when connected");
      }
    }
  }
}

function markFirstUnread() {
  const first = [...list().querySelectorAll(":scope > .message-item")].find(
    (i) => Number(i.dataset.messageId) > current.last_read && Number(i.dataset.senderId) !== me.id,
  );
  if (first && current.last_read > 0) first.classList.add("first-unread");
}

export function initMessages(given) {
  hooks = { ...hooks, ...given };
  if (!current || !list()) return;
  list().addEventListener("click", onListClick);
  const older = byId("load-older");
  older?.addEventListener("click", () => loadOlder(older));
  let scrollQueued = false;
  scroller().addEventListener("scroll", () => {
    if (scrollQueued) return;
    scrollQueued = true;
    setTimeout(() => {
      scrollQueued = false;
      maybeMarkRead();
    }, 250);
  });
  localiseTimes(list());
  setInterval(() => localiseTimes(list()), TIMES_EVERY_MS);
  renderDays();
  list().querySelectorAll(".message-item > article").forEach(collapseIfLong);
  markFirstUnread();
  initListNav();
  const target = location.hash.startsWith("#message-") ? byId(location.hash.slice(1)) : null;
  if (target) {
    target.classList.add("highlight");
    target.scrollIntoView({ block: "center" });
  } else {
    scrollToBottom();
  }
}
