// SafeChat chat portal (templates/rooms/chat.html). An ES module with no build step.
//
// The page is rendered by the server; this module keeps it live through the one
// WebSocket of the tab (protocol: docs/realtime.md; server side: rooms/socket/). It never uses innerHTML except
// for a message's `html`, which the server rendered and sanitised (rooms/markdown.py).
// Everything else is built with DOM nodes and textContent.

const config = JSON.parse(document.getElementById("chat-config").textContent);
// The socket's names, from the page (safechat/events.py): EVENT.MESSAGE_NEW is
// "message.new", FRAME.PING is "ping". Never typed here again; a name the server does
// not know is an error at once, not a handler that silently never runs.
const socketNames = JSON.parse(document.getElementById("socket-names").textContent);
const known = (table) =>
  new Proxy(Object.freeze({ ...table }), {
    get(target, name) {
      if (!(name in target)) throw new Error(`unknown socket name ${String(name)}`);
      return target[name];
    },
  });
const EVENT = known(socketNames.events);
const FRAME = known(socketNames.frames);
const root = document.getElementById("chat");
const me = config.user;
const current = config.room; // null when the user is in no room
const csrfToken = root.dataset.csrf;

const PING_EVERY_MS = 25_000; // keeps proxies from closing an idle socket
const PONG_WITHIN_MS = 10_000; // a socket silent this long after a ping is dead
const TYPING_SEND_EVERY_MS = 2_000; // the server ignores typing frames sent faster
const TYPING_SHOWN_MS = 5_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_SESSION_ENDED = 4410;
const SYNC_ROOMS_PER_FRAME = 20; // the server's bound on one sync frame

// ---------------------------------------------------------------------------------------
// Small DOM helpers: text only, never markup.
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const hidden = (text) => h("span", { class: "visually-hidden" }, text);
const byId = (id) => document.getElementById(id);
const sentence = (text) => {
  const t = String(text || "Something went wrong").trim();
  return t.charAt(0).toUpperCase() + t.slice(1) + (t.endsWith(".") ? "" : ".");
};

function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? ""
    : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function timeEl(iso) {
  const node = h("time", { datetime: iso }, formatTime(iso));
  node.title = new Date(iso).toLocaleString();
  return node;
}

// ---------------------------------------------------------------------------------------
// State
// Per room, the newest message seen with none missing before it ({id, seq}): where a
// resync starts. Messages are numbered 1, 2, 3... per room (seq), so a number skipped is
// a message missed: delivered out of order by another server, or lost with a connection.
const cursors = new Map(Object.entries(config.cursors).map(([room, [id, seq]]) => [Number(room), { id, seq }]));
const newestSeen = new Map(cursors); // per room, the newest message seen at all
const resyncing = new Set(); // rooms asked again after a skipped number
const ownTexts = new Map(
  Object.entries(current?.own_texts ?? {}).map(([id, text]) => [Number(id), text]),
);
const members = new Map((current?.members ?? []).map((m) => [m.user_id, m]));
const presence = new Map(); // user id -> "online" | "away" | "offline"
const pending = new Map(); // client id -> { element, text, parentId, sent }
const awaiting = new Map(); // message id (acked) -> pending element, until message.new comes
const typingTimers = new Map(); // user id -> timeout
let clientSeq = 0;
let lastTypingSent = 0;
let lastReadSent = current?.last_read ?? 0;
let mode = { kind: "post" }; // or { kind: "edit", messageId } / { kind: "reply", parentId }
let savedDraft = "";
let returnFocus = null;

const list = byId("message-list");
const scroller = byId("message-scroller");
const composer = byId("composer");
const input = byId("composer-input");

// ---------------------------------------------------------------------------------------
// Connection state, visible at the top right of the room.
const stateEl = byId("connection-state");
function setConnectionState(state, detail = "") {
  stateEl.dataset.state = state;
  const text = stateEl.querySelector(".connection-text");
  const labels = {
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    ended: "Signed out",
  };
  text.textContent = labels[state] + (detail ? ` ${detail}` : "");
  stateEl.querySelector(".connection-action")?.remove();
  if (state === "reconnecting") {
    const retry = h("button", { type: "button", class: "link connection-action" }, "Retry now");
    retry.addEventListener("click", () => socket.retryNow());
    stateEl.append(retry);
  } else if (state === "ended") {
    const next = encodeURIComponent(location.pathname + location.search);
    stateEl.append(
      h("a", { class: "connection-action", href: `/accounts/sign-in/?next=${next}` }, "Sign in again"),
    );
  }
}

// ---------------------------------------------------------------------------------------
// The socket: exponential backoff with jitter, resync by last seen message id.
const socket = (() => {
  let ws = null;
  let attempt = 0;
  let retryTimer = null;
  let pingTimer = null;
  let pongTimer = null;
  let ended = false;

  function url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${config.urls.socket}`;
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    setConnectionState(attempt ? "reconnecting" : "connecting");
    ws = new WebSocket(url());
    ws.addEventListener("open", () => {
      attempt = 0;
      setConnectionState("connected");
      // Everything newer than what this page has seen, for every room it knows.
      syncReset();
      requestSync([...cursors].map(([room, c]) => [room, c.id]));
      if (document.visibilityState === "hidden") send({ type: FRAME.PRESENCE, state: "away" });
      setPresence(me.id, document.visibilityState === "hidden" ? "away" : "online");
      if (current) send({ type: FRAME.PRESENCE_GET, room_id: current.id }); // who is here already
      flushOutbox();
      pingTimer = setInterval(ping, PING_EVERY_MS);
    });
    ws.addEventListener("message", (event) => {
      clearTimeout(pongTimer); // any frame proves the socket alive
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      handleFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      clearInterval(pingTimer);
      clearTimeout(pongTimer);
      ws = null;
      markUnconfirmed();
      // Offline, we no longer learn who comes and goes: show presence as unknown.
      for (const userId of [...presence.keys()]) setPresence(userId, "unknown");
      if (event.code === CLOSE_UNAUTHENTICATED || event.code === CLOSE_SESSION_ENDED) {
        ended = true; // reconnecting cannot help: the session is gone
        expiry.hide();
        setConnectionState("ended", endedReasons[endedReason] ?? "");
        return;
      }
      // Anything else (1013 "try again later", 4429 flooding, a network loss) backs off.
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (ended || retryTimer) return;
    // "Equal jitter": half the exponential delay, plus a random half, so that a
    // server restart is not followed by every client reconnecting at one instant.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    attempt += 1;
    setConnectionState("reconnecting", `(retry in ${Math.ceil(delay / 1000)} s)`);
    retryTimer = setTimeout(connect, delay);
  }

  function ping() {
    if (!isOpen()) return;
    send({ type: FRAME.PING });
    clearTimeout(pongTimer);
    pongTimer = setTimeout(() => ws?.close(), PONG_WITHIN_MS);
  }

  function isOpen() {
    return ws !== null && ws.readyState === WebSocket.OPEN;
  }

  function send(frame) {
    if (!isOpen()) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function retryNow() {
    if (ended || isOpen()) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    connect();
  }

  return { connect, send, isOpen, retryNow };
})();

window.addEventListener("online", () => socket.retryNow());

// Catch-up, paged: at most SYNC_ROOMS_PER_FRAME rooms a frame; "sync.done" maps the rooms
// with more to fetch to the cursor to continue from, and those are asked again.
// One sync frame in flight at a time: the next goes when "sync.done" answers the last.
const syncQueue = [];
let syncInFlight = false;
function requestSync(roomCursors) {
  for (let i = 0; i < roomCursors.length; i += SYNC_ROOMS_PER_FRAME) {
    syncQueue.push(Object.fromEntries(roomCursors.slice(i, i + SYNC_ROOMS_PER_FRAME)));
  }
  sendNextSync();
}
function sendNextSync() {
  if (syncInFlight || !syncQueue.length) return;
  syncInFlight = socket.send({ type: FRAME.SYNC, rooms: syncQueue.shift() });
}
function syncReset() {
  // A new connection starts its catch-up afresh from the cursors.
  syncQueue.length = 0;
  syncInFlight = false;
}

// ---------------------------------------------------------------------------------------
// The session's time limits: warned a minute ahead, with a way to stay (WCAG 2.2.1).
let endedReason = "";
const endedReasons = {
  idle: "after a period of inactivity",
  absolute: "(the session reached its maximum length)",
  credentials_changed: "(the password or second factors changed)",
  deactivated: "(the account was deactivated)",
};
const expiry = (() => {
  const box = byId("session-expiry");
  const text = byId("session-expiry-text");
  const stay = byId("session-expiry-stay");
  let countdown = null;

  stay?.addEventListener("click", () => {
    socket.send({ type: FRAME.SESSION_EXTEND });
  });

  function show({ reason, seconds, extendable }) {
    if (!box) return;
    let left = seconds;
    const render = () => {
      text.textContent =
        reason === "idle"
          ? `You will be signed out in ${left} s because of inactivity.`
          : `Your session ends in ${left} s (its maximum length). Save your work; you will need to sign in again.`;
    };
    render();
    clearInterval(countdown);
    countdown = setInterval(() => {
      left = Math.max(0, left - 1);
      render();
    }, 1000);
    stay.hidden = !extendable;
    box.hidden = false;
    (extendable ? stay : text).focus();
  }

  function hide() {
    clearInterval(countdown);
    if (box) box.hidden = true;
  }

  return { show, hide };
})();

// ---------------------------------------------------------------------------------------
// Frames from the server
const handlers = {
  [EVENT.MESSAGE_NEW]: (f) => onMessageNew(f.room_id, f.message),
  [EVENT.MESSAGE_EDITED]: (f) => onMessageChanged(f.room_id, f.message),
  [EVENT.MESSAGE_REACTIONS]: (f) => onMessageChanged(f.room_id, f.message),
  [EVENT.MESSAGE_DELETED]: (f) => onMessageDeleted(f.room_id, f.message_id),
  [EVENT.TYPING]: (f) => onTyping(f.room_id, f.user_id),
  [EVENT.PRESENCE]: (f) => onPresence(f.room_id, f.user_id, f.state),
  [EVENT.PRESENCE_SNAPSHOT]: (f) => onPresenceSnapshot(f.room_id, f.states),
  [EVENT.READ_MARKER]: (f) => {
    if (f.user_id === me.id) setUnread(f.room_id, 0); // read in another tab
  },
  [EVENT.MEMBER_ADDED]: (f) => onMembersChanged(f.room_id),
  [EVENT.MEMBER_REMOVED]: (f) => onMembersChanged(f.room_id),
  [EVENT.MEMBER_UPDATED]: (f) => onMemberUpdated(f.room_id, f.user_id),
  [EVENT.ROOM_GRANTED]: (f) => onRoomGranted(f.room_id),
  [EVENT.ROOM_REVOKED]: (f) => onRoomRevoked(f.room_id),
  [EVENT.ROOM_UPDATED]: (f) => onRoomUpdated(f.room_id),
  [EVENT.ROOM_ARCHIVED]: (f) => onRoomArchived(f.room_id),
  [EVENT.MENTION]: (f) => onMention(f.room_id, f.message_id),
  [EVENT.ACK]: (f) => onAck(f.client_id, f.message_id),
  [EVENT.ERROR]: (f) => onErrorFrame(f),
  [EVENT.SYNC_DONE]: (f) => {
    const more = Object.entries(f.more ?? {}).map(([room, after]) => [Number(room), after]);
    const following = new Set(more.map(([room]) => room));
    // What a resync did not bring was deleted meanwhile: nothing is missing any more.
    for (const roomId of resyncing) {
      if (following.has(roomId)) continue;
      cursors.set(roomId, newestSeen.get(roomId));
      resyncing.delete(roomId);
    }
    syncInFlight = false;
    if (more.length) requestSync(more);
    else sendNextSync();
    maybeMarkRead();
  },
  [EVENT.SESSION_EXPIRING]: (f) => expiry.show(f),
  [EVENT.SESSION_EXTENDED]: () => expiry.hide(),
  [EVENT.SESSION_ENDED]: (f) => {
    endedReason = f.reason;
  },
  [EVENT.PONG]: () => {},
};

function handleFrame(frame) {
  const handler = handlers[frame?.type];
  if (handler) handler(frame);
}

// ---------------------------------------------------------------------------------------
// Messages
const isCurrent = (roomId) => current !== null && Number(roomId) === current.id;
const messageEl = (id) => byId(`message-${id}`);

function setBody(body, message) {
  if (message.text_status === "integrity_failure") {
    body.replaceChildren(
      h("p", { class: "msg-unreadable msg-tampered" },
        "This message failed its integrity check and is not shown. The security team has been notified."),
    );
  } else if (message.html === null || message.html === undefined) {
    body.replaceChildren(h("p", { class: "msg-unreadable" }, "This message can no longer be read."));
  } else {
    body.innerHTML = message.html; // sanitised by the server (nh3), the only innerHTML here
  }
}

function reactionButtons(container, reactions) {
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
}

function messageActions(message) {
  if (!current?.can.post) return null;
  const own = message.sender_id === me.id;
  return h(
    "div",
    { class: "msg-actions" },
    h("button", { type: "button", dataset: { action: "reply" } }, "Reply", hidden(` in thread to ${message.sender}`)),
    h("button", { type: "button", dataset: { action: "react", emoji: "👍" }, "aria-label": "React with thumbs up" }, "👍"),
    own ? h("button", { type: "button", dataset: { action: "edit" } }, "Edit", hidden(" your message")) : null,
    own || current.can.manage_members
      ? h("button", { type: "button", class: "danger-text", dataset: { action: "delete" } }, "Delete", hidden(` message from ${message.sender}`))
      : null,
  );
}

// The one place a wire message (rooms/wire.py: WireMessage) becomes DOM. Builds its list
// item, or, given the item already shown, updates what can change: the body, the
// "(edited)" mark and the reactions. Mirrors templates/rooms/_message.html.
function messageItem(message, shown = null) {
  if (shown) {
    const article = shown.querySelector(":scope > article");
    setBody(article.querySelector(".msg-body"), message);
    article.querySelector(".msg-edited").hidden = !message.edited_at;
    reactionButtons(article.querySelector(".msg-reactions"), message.reactions);
    return shown;
  }
  const metaId = `message-${message.id}-meta`;
  const body = h("div", { class: "msg-body", dir: "auto" });
  setBody(body, message);
  const reactions = h("div", { class: "msg-reactions" });
  reactionButtons(reactions, message.reactions);
  const article = h(
    "article",
    { class: message.sender_id === me.id ? "msg own" : "msg", "aria-labelledby": metaId },
    h(
      "header",
      { class: "msg-meta", id: metaId },
      h("bdi", { class: "msg-sender" }, message.sender),
      " ",
      timeEl(message.created_at),
      " ",
      h("span", { class: "msg-edited", hidden: !message.edited_at }, "(edited)"),
    ),
    body,
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
    item.append(h("ol", { class: "thread", "aria-label": `Replies to ${message.sender}`, hidden: true }));
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
    insertOrdered(list, item);
  }
  byId("message-empty")?.setAttribute("hidden", "");
}

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}

function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
}

function announce(text) {
  const region = byId("live-announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick is announced even when it repeats the last one.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

// Records a message of a room as seen; returns whether it is newer than all seen before.
function noteSeen(roomId, message) {
  const seen = { id: message.id, seq: message.seq };
  const cursor = cursors.get(roomId);
  if (!cursor) {
    cursors.set(roomId, seen); // a room just granted: start here
    newestSeen.set(roomId, seen);
    return true;
  }
  const newest = newestSeen.get(roomId) ?? cursor;
  const fresh = message.id > newest.id;
  if (fresh) newestSeen.set(roomId, seen);
  if (message.seq === cursor.seq + 1) {
    cursors.set(roomId, seen);
  } else if (message.seq > cursor.seq + 1 && !resyncing.has(roomId)) {
    // Ask again from the last message held in order; the ones already here are skipped.
    resyncing.add(roomId);
    requestSync([[roomId, cursor.id]]);
  }
  return fresh;
}

function onMessageNew(roomId, message) {
  roomId = Number(roomId);
  const fresh = noteSeen(roomId, message);
  if (!isCurrent(roomId)) {
    if (message.sender_id !== me.id && fresh) bumpUnread(roomId);
    return;
  }
  if (message.sender_id === me.id && message.text !== null) ownTexts.set(message.id, message.text);
  clearTyping(message.sender_id);
  const existing = messageEl(message.id);
  if (existing) {
    onMessageChanged(roomId, message);
    return;
  }
  const stick = nearBottom() || message.sender_id === me.id;
  const item = messageItem(message);
  const placeholder = awaiting.get(message.id);
  if (placeholder) {
    placeholder.remove();
    awaiting.delete(message.id);
  }
  placeMessage(item);
  if (stick) scrollToBottom();
  if (message.sender_id !== me.id) {
    const text = message.text ?? "a message that can no longer be read";
    announce(`${message.sender}: ${text.slice(0, 280)}`);
  }
  maybeMarkRead();
}

function onMessageChanged(roomId, message) {
  if (!isCurrent(roomId)) return;
  const item = messageEl(message.id);
  if (!item) return;
  if (message.sender_id === me.id && message.text !== null) ownTexts.set(message.id, message.text);
  item.querySelector(":scope > article").classList.remove("saving");
  messageItem(message, item);
}

function onMessageDeleted(roomId, messageId) {
  if (!isCurrent(roomId)) return;
  ownTexts.delete(Number(messageId));
  if (mode.kind === "edit" && mode.messageId === Number(messageId)) cancelMode();
  const item = messageEl(messageId);
  if (!item) return;
  const thread = item.querySelector(":scope > ol.thread");
  if (thread && thread.children.length) {
    // Keep the replies; the thread's first message reads as deleted.
    const article = item.querySelector(":scope > article");
    article.querySelector(".msg-body").replaceChildren(h("p", { class: "msg-unreadable" }, "This message was deleted."));
    article.querySelector(".msg-actions")?.remove();
    article.querySelector(".msg-reactions").replaceChildren();
  } else {
    const focusWasInside = item.contains(document.activeElement);
    item.remove();
    if (focusWasInside) list.focus();
  }
}

// ---------------------------------------------------------------------------------------
// Posting, with a pending item until the server acknowledges
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
      h("header", { class: "msg-meta" }, h("bdi", { class: "msg-sender" }, me.username), " ", status),
      h("div", { class: "msg-body", dir: "auto" }, h("p", { class: "msg-plain" }, text)),
    ),
  );
  const thread = parentId ? messageEl(parentId)?.querySelector(":scope > ol.thread") : null;
  if (thread) {
    thread.append(item);
    thread.hidden = false;
  } else {
    list.append(item);
  }
  byId("message-empty")?.setAttribute("hidden", "");
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

function flushOutbox() {
  for (const [clientId, entry] of pending) {
    if (!entry.sent) sendPending(clientId, entry);
  }
}

// The socket closed before these were acknowledged: they may or may not be stored.
function markUnconfirmed() {
  for (const [clientId, entry] of pending) {
    if (!entry.sent) continue;
    pending.delete(clientId);
    const again = h("button", { type: "button", class: "link" }, "Send again");
    const discard = h("button", { type: "button", class: "link" }, "Discard");
    again.addEventListener("click", () => {
      entry.element.remove();
      post(entry.text, entry.parentId, clientId);
    });
    discard.addEventListener("click", () => {
      entry.element.remove();
      input?.focus();
    });
    entry.element.classList.add("failed");
    setPendingStatus(entry, "Not confirmed: it appears above if it was delivered.", [again, discard]);
  }
}

function onAck(clientId, messageId) {
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

function showError(text) {
  const box = byId("composer-error");
  if (!box) {
    notice(sentence(text), true);
    return;
  }
  box.textContent = sentence(text);
  box.hidden = false;
}

function clearError() {
  const box = byId("composer-error");
  if (box) box.hidden = true;
}

function onErrorFrame(frame) {
  const entry = frame.client_id ? pending.get(frame.client_id) : null;
  if (entry) {
    // Give the text back so nothing typed is lost.
    pending.delete(frame.client_id);
    entry.element.remove();
    if (input && !input.value.trim()) {
      input.value = entry.text;
      if (entry.parentId) startReply(entry.parentId);
    }
  }
  list?.querySelectorAll("article.saving").forEach((a) => a.classList.remove("saving"));
  showError(frame.detail || frame.code);
}

// ---------------------------------------------------------------------------------------
// Composer: post, reply in thread, edit; typing indicator
function setContext(text) {
  const box = byId("composer-context");
  box.hidden = !text;
  byId("composer-context-text").textContent = text || "";
}

function startReply(parentId, trigger = null) {
  const root = messageEl(parentId);
  const sender = root?.querySelector(".msg-sender")?.textContent ?? "a message";
  if (mode.kind === "edit") cancelMode();
  mode = { kind: "reply", parentId: Number(parentId) };
  returnFocus = trigger;
  setContext(`Replying in thread to ${sender}`);
  input.focus();
}

function startEdit(messageId, trigger = null) {
  const text = ownTexts.get(Number(messageId));
  if (text === undefined) {
    showError("this message cannot be edited any more");
    return;
  }
  if (mode.kind !== "edit") savedDraft = input.value;
  mode = { kind: "edit", messageId: Number(messageId) };
  returnFocus = trigger;
  setContext("Editing your message");
  input.value = text;
  input.focus();
  input.setSelectionRange(text.length, text.length);
}

function cancelMode() {
  const wasEdit = mode.kind === "edit";
  mode = { kind: "post" };
  setContext("");
  if (wasEdit) input.value = savedDraft;
  savedDraft = "";
  clearError();
  const target = returnFocus;
  returnFocus = null;
  (target && target.isConnected ? target : input).focus();
}

function submitComposer() {
  const text = input.value;
  if (!text.trim()) return;
  clearError();
  if (mode.kind === "edit") {
    const id = mode.messageId;
    if (text !== ownTexts.get(id)) {
      if (!socket.send({ type: FRAME.MESSAGE_EDIT, message_id: id, text })) {
        showError("not connected: your edit was not saved, try again when connected");
        return;
      }
      messageEl(id)?.querySelector(":scope > article")?.classList.add("saving");
    }
    input.value = savedDraft;
    savedDraft = "";
    mode = { kind: "post" };
    setContext("");
    returnFocus = null;
    return;
  }
  post(text, mode.kind === "reply" ? mode.parentId : null);
  input.value = "";
  if (mode.kind === "reply") {
    mode = { kind: "post" };
    setContext("");
    returnFocus = null;
  }
}

function lastOwnMessageId() {
  const ids = [...ownTexts.keys()].filter((id) => messageEl(id));
  return ids.length ? Math.max(...ids) : null;
}

if (composer) {
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitComposer();
    input.focus();
  });
  byId("composer-cancel").addEventListener("click", cancelMode);
  input.addEventListener("keydown", (event) => {
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
    } else if (event.key === "ArrowUp" && !input.value && mode.kind === "post") {
      const id = lastOwnMessageId();
      if (id !== null) {
        event.preventDefault();
        startEdit(id);
      }
    }
  });
  input.addEventListener("input", () => {
    const now = Date.now();
    if (mode.kind === "edit" || !input.value.trim() || now - lastTypingSent < TYPING_SEND_EVERY_MS) return;
    if (socket.send({ type: FRAME.TYPING, room_id: current.id })) lastTypingSent = now;
  });
}

function usernameOf(userId) {
  return members.get(userId)?.username ?? "Someone";
}

function renderTyping() {
  const box = byId("typing-indicator");
  if (!box) return;
  const names = [...typingTimers.keys()].map(usernameOf);
  box.textContent =
    names.length === 0 ? ""
    : names.length === 1 ? `${names[0]} is typing…`
    : names.length === 2 ? `${names[0]} and ${names[1]} are typing…`
    : "Several people are typing…";
}

function clearTyping(userId) {
  if (!typingTimers.has(userId)) return;
  clearTimeout(typingTimers.get(userId));
  typingTimers.delete(userId);
  renderTyping();
}

function onTyping(roomId, userId) {
  if (!isCurrent(roomId) || userId === me.id) return;
  clearTimeout(typingTimers.get(userId));
  typingTimers.set(userId, setTimeout(() => clearTyping(userId), TYPING_SHOWN_MS));
  renderTyping();
}

// ---------------------------------------------------------------------------------------
// Message actions (event delegation: works for server-rendered and live items alike)
// ``background``: fetched by the page on its own (a member list after an event), not by
// the person: the server does not count it as activity on the session's idle clock.
async function api(path, { method = "GET", body, background = false } = {}) {
  const headers = { Accept: "application/json" };
  if (background) headers["X-SafeChat-Background"] = "1";
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRFToken"] = csrfToken; // the cookie is HttpOnly; the page carries the token
  }
  const response = await fetch(`${config.urls.api}${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = `request failed (${response.status})`;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      // keep the generic detail
    }
    throw new Error(detail);
  }
  return response.status === 204 ? null : response.json();
}

list?.addEventListener("click", (event) => {
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
  if (button.classList.contains("reaction") || button.dataset.action === "react") {
    api(`rooms/${current.id}/messages/${messageId}/reactions/`, {
      method: "POST",
      body: { emoji: button.dataset.emoji },
    }).catch((error) => showError(error.message));
  } else if (button.dataset.action === "reply") {
    // Threads are one level deep: a reply to a reply joins the same thread.
    startReply(Number(item.dataset.parentId || messageId), button);
  } else if (button.dataset.action === "edit") {
    startEdit(messageId, button);
  } else if (button.dataset.action === "delete") {
    if (window.confirm("Delete this message? Members will no longer see it.")) {
      if (!socket.send({ type: FRAME.MESSAGE_DELETE, message_id: messageId })) {
        showError("not connected: the message was not deleted, try again when connected");
      }
    }
  }
});

// ---------------------------------------------------------------------------------------
// Older messages through the REST API
const olderButton = byId("load-older");
olderButton?.addEventListener("click", async () => {
  olderButton.disabled = true;
  olderButton.textContent = "Loading…";
  try {
    const before = olderButton.dataset.before;
    const page = await api(`rooms/${current.id}/messages/?before=${encodeURIComponent(before)}&limit=50`);
    const heightBefore = scroller.scrollHeight;
    for (const message of [...page.results].reverse()) {
      if (message.sender_id === me.id && message.text !== null) ownTexts.set(message.id, message.text);
      if (!messageEl(message.id)) placeMessage(messageItem(message));
    }
    adoptOrphans();
    scroller.scrollTop += scroller.scrollHeight - heightBefore; // keep the reader's place
    announce(`${page.results.length} older messages loaded`);
    if (page.next_before) {
      olderButton.dataset.before = page.next_before;
    } else {
      olderButton.remove();
      list.focus();
      return;
    }
  } catch (error) {
    showError(error.message);
  }
  olderButton.disabled = false;
  olderButton.textContent = "Load older messages";
});

// Replies shown alone because their thread started before the page move under it once loaded.
function adoptOrphans() {
  for (const item of [...list.querySelectorAll(":scope > li[data-parent-id]")]) {
    if (messageEl(item.dataset.parentId)?.querySelector(":scope > ol.thread")) placeMessage(item);
  }
}

// ---------------------------------------------------------------------------------------
// Read markers: sent when the newest message is on screen and the tab has focus.
function maybeMarkRead() {
  if (!current || !list) return;
  if (document.visibilityState !== "visible" || !document.hasFocus() || !nearBottom()) return;
  const ids = [...list.querySelectorAll(".message-item[data-message-id]")].map((i) =>
    Number(i.dataset.messageId),
  );
  const newest = ids.length ? Math.max(...ids) : 0;
  setUnread(current.id, 0);
  if (newest > lastReadSent && socket.send({ type: FRAME.READ, room_id: current.id, message_id: newest })) {
    lastReadSent = newest;
  }
}

let scrollQueued = false;
scroller?.addEventListener("scroll", () => {
  if (scrollQueued) return;
  scrollQueued = true;
  setTimeout(() => {
    scrollQueued = false;
    maybeMarkRead();
  }, 250);
});
window.addEventListener("focus", maybeMarkRead);
document.addEventListener("visibilitychange", () => {
  socket.send({ type: FRAME.PRESENCE, state: document.visibilityState === "visible" ? "online" : "away" });
  if (document.visibilityState === "visible") {
    maybeMarkRead();
    socket.retryNow();
  }
});

// ---------------------------------------------------------------------------------------
// Room list: unread badges, mentions, rooms granted and revoked
const roomList = byId("room-list");
const roomItem = (roomId) => roomList.querySelector(`li[data-room-id="${Number(roomId)}"]`);

function setUnread(roomId, count) {
  const badge = roomItem(roomId)?.querySelector(".badge");
  if (!badge) return;
  badge.dataset.unread = String(count);
  badge.hidden = count <= 0;
  badge.replaceChildren(h("span", { "aria-hidden": "true" }, count), hidden(`, ${count} unread`));
  if (count <= 0) {
    const mention = roomItem(roomId)?.querySelector(".mention-badge");
    if (mention) mention.hidden = true;
  }
}

function bumpUnread(roomId) {
  const badge = roomItem(roomId)?.querySelector(".badge");
  if (badge) setUnread(roomId, Number(badge.dataset.unread || 0) + 1);
}

function roomEntry(room, mentioned) {
  const link = h(
    "a",
    { href: `${config.urls.portal}?room=${room.id}`, "aria-current": isCurrent(room.id) ? "page" : null },
    h("span", { class: "room-kind", "aria-hidden": "true" }, room.kind === "direct" ? "@" : "#"),
    " ",
    h("bdi", { class: "room-name" }, room.name),
    room.archived ? hidden(" (archived)") : null,
    h("span", { class: "mention-badge", hidden: !mentioned }, "@", hidden(" you were mentioned")),
    h("span", { class: "badge", dataset: { unread: room.unread ?? 0 }, hidden: !room.unread }),
  );
  const item = h("li", { class: room.archived ? "room-item archived" : "room-item", dataset: { roomId: room.id } }, link);
  return item;
}

async function refreshRoomList() {
  const rooms = await api("rooms/", { background: true });
  const mentioned = new Set(
    [...roomList.querySelectorAll(".mention-badge:not([hidden])")].map((m) => Number(m.closest("li").dataset.roomId)),
  );
  const focusedRoom = document.activeElement?.closest?.("#room-list li")?.dataset.roomId;
  roomList.replaceChildren(...rooms.map((room) => roomEntry(room, mentioned.has(room.id))));
  for (const room of rooms) {
    setUnread(room.id, isCurrent(room.id) ? 0 : room.unread ?? 0);
  }
  if (focusedRoom) roomItem(focusedRoom)?.querySelector("a")?.focus();
  return rooms;
}

// ``alarm``: a failure (styled as an error), else information.
function notice(text, alarm = false, link = null) {
  const box = byId("notices");
  const close = h("button", { type: "button", class: "link notice-close", "aria-label": "Dismiss" }, "×");
  const item = h("p", { class: alarm ? "chat-notice error" : "chat-notice info", tabindex: "-1" }, text, link ? " " : null, link, " ", close);
  close.addEventListener("click", () => item.remove());
  box.append(item);
  return item;
}

async function onRoomGranted(roomId) {
  try {
    const rooms = await refreshRoomList();
    const room = rooms.find((r) => r.id === Number(roomId));
    // Start this room's sync cursor at its newest message, not at the beginning of history.
    const page = await api(`rooms/${Number(roomId)}/messages/?limit=1`, { background: true });
    const newest = page.results[0];
    if (!cursors.has(Number(roomId))) {
      const start = newest ? { id: newest.id, seq: newest.seq } : { id: 0, seq: 0 };
      cursors.set(Number(roomId), start);
      newestSeen.set(Number(roomId), start);
    }
    if (room) {
      notice(`You were added to ${room.name}.`, false, h("a", { href: `${config.urls.portal}?room=${room.id}` }, "Open it"));
    }
  } catch (error) {
    notice(sentence(`could not refresh your rooms: ${error.message}`), true);
  }
}

function onRoomRevoked(roomId) {
  roomId = Number(roomId);
  const name = roomItem(roomId)?.querySelector(".room-name")?.textContent ?? "a room";
  roomItem(roomId)?.remove();
  cursors.delete(roomId);
  newestSeen.delete(roomId);
  resyncing.delete(roomId);
  if (!isCurrent(roomId)) {
    notice(`You were removed from ${name}.`);
    return;
  }
  // Nothing of a room one has left stays on screen.
  list?.replaceChildren();
  byId("load-older")?.remove();
  composer?.remove();
  document.querySelector(".chat-side")?.remove();
  const item = notice(`You no longer have access to ${name}. Its messages were removed from this page.`, true);
  item.focus();
}

async function onRoomUpdated(roomId) {
  try {
    const rooms = await refreshRoomList();
    const room = rooms.find((r) => r.id === Number(roomId));
    if (room && isCurrent(roomId)) {
      byId("room-title").textContent = `${room.kind === "direct" ? "@" : "#"} ${room.name}`;
      byId("room-topic").textContent = room.topic;
      document.title = `${room.name} · SafeChat`;
    }
  } catch (error) {
    notice(sentence(`could not refresh your rooms: ${error.message}`), true);
  }
}

function onRoomArchived(roomId) {
  onRoomUpdated(roomId);
  if (!isCurrent(roomId)) return;
  composer?.replaceWith(h("p", { class: "composer-readonly muted" }, "This room was archived: it stays readable and nobody can post."));
  list?.querySelectorAll(".msg-actions").forEach((a) => a.remove());
  notice("This room was archived.");
}

function onMention(roomId, messageId) {
  const name = roomItem(roomId)?.querySelector(".room-name")?.textContent ?? "a room";
  if (isCurrent(roomId) && document.hasFocus()) return; // seen where it happens
  const badge = roomItem(roomId)?.querySelector(".mention-badge");
  if (badge) badge.hidden = false;
  notice(`You were mentioned in ${name}.`, false, h("a", { href: `${config.urls.portal}?room=${Number(roomId)}#message-${Number(messageId)}` }, "Show"));
}

// ---------------------------------------------------------------------------------------
// Members and presence
function setPresence(userId, state) {
  presence.set(userId, state);
  const item = byId("member-list")?.querySelector(`li[data-user-id="${Number(userId)}"]`);
  if (!item) return;
  item.querySelector(".presence").dataset.state = state;
  item.querySelector(".presence-text").textContent = state === "unknown" ? "" : `, ${state}`;
}

function onPresence(roomId, userId, state) {
  if (!isCurrent(roomId)) return;
  setPresence(userId, state);
}

function onPresenceSnapshot(roomId, states) {
  if (!isCurrent(roomId)) return;
  for (const userId of members.keys()) {
    if (userId !== me.id) setPresence(userId, states[String(userId)] ?? "offline");
  }
}

function csrfInput() {
  return h("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrfToken });
}

// Mirrors the member rows of templates/rooms/chat.html.
function memberItem(member) {
  const name = member.username;
  const roleLabel = Object.fromEntries(current.role_choices)[member.role] ?? member.role;
  const item = h(
    "li",
    { class: "member", dataset: { userId: member.user_id } },
    h(
      "div",
      { class: "member-line" },
      h("span", { class: "presence", "aria-hidden": "true", dataset: { state: presence.get(member.user_id) ?? "unknown" } }),
      " ",
      h("bdi", { class: "member-name" }, name),
      member.user_id === me.id ? h("span", { class: "muted" }, " (you)") : null,
      h("span", { class: "presence-text visually-hidden" }, presence.get(member.user_id) && presence.get(member.user_id) !== "unknown" ? `, ${presence.get(member.user_id)}` : ""),
      " ",
      h("span", { class: "tag role-tag" }, roleLabel),
    ),
  );
  if (current.can.manage_people && member.user_id !== me.id) {
    const base = `${config.urls.portal}${current.id}/members/${member.user_id}`;
    const select = h("select", { id: `role-${member.user_id}`, name: "role" });
    for (const [value, label] of current.role_choices) {
      select.append(h("option", { value, selected: value === member.role }, label));
    }
    item.append(
      h(
        "details",
        { class: "member-manage" },
        h("summary", {}, "Manage", hidden(` ${name}`)),
        h("form", { method: "post", action: `${base}/role/`, class: "member-form" }, csrfInput(), h("label", { for: `role-${member.user_id}` }, "Role"), select, h("button", { type: "submit" }, "Change role")),
        h(
          "form",
          { method: "post", action: `${base}/remove/`, class: "member-form" },
          csrfInput(),
          h("button", { type: "submit", class: "danger", dataset: { confirm: `Remove ${name} from ${current.name}? They lose access at once.` } }, "Remove from room"),
        ),
      ),
    );
  }
  return item;
}

async function onMembersChanged(roomId) {
  if (!isCurrent(roomId)) return;
  try {
    const rows = await api(`rooms/${current.id}/members/`, { background: true });
    members.clear();
    for (const row of rows) members.set(row.user_id, row);
    byId("member-list")?.replaceChildren(...rows.map(memberItem));
    const count = byId("member-count");
    if (count) count.textContent = String(rows.length);
    socket.send({ type: FRAME.PRESENCE_GET, room_id: current.id }); // a newcomer may be online
  } catch {
    // Removed from the room meanwhile: room.revoked says so.
  }
}

function onMemberUpdated(roomId, userId) {
  onMembersChanged(roomId);
  if (isCurrent(roomId) && userId === me.id) {
    notice("Your role in this room changed.", false, h("a", { href: `${config.urls.portal}?room=${current.id}` }, "Reload to update the page"));
  }
}

// ---------------------------------------------------------------------------------------
// Keyboard: Alt+Up / Alt+Down switch rooms; Escape leaves edit or reply mode.
document.addEventListener("keydown", (event) => {
  if (event.altKey && !event.ctrlKey && !event.metaKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    const links = [...roomList.querySelectorAll("li.room-item > a")];
    if (!links.length) return;
    event.preventDefault();
    const at = links.findIndex((a) => a.getAttribute("aria-current") === "page");
    const next = event.key === "ArrowUp" ? at - 1 : at + 1;
    const target = links[Math.max(0, Math.min(links.length - 1, at === -1 ? 0 : next))];
    if (target.getAttribute("aria-current") !== "page") location.assign(target.href);
  } else if (event.key === "Escape" && mode.kind !== "post" && event.target !== input) {
    cancelMode();
  }
});

// ---------------------------------------------------------------------------------------
// Start
function markFirstUnread() {
  if (!current || !list) return;
  const first = [...list.querySelectorAll(":scope > .message-item")].find(
    (i) => Number(i.dataset.messageId) > current.last_read && Number(i.dataset.senderId) !== me.id,
  );
  if (first && current.last_read > 0) first.classList.add("first-unread");
}

document.querySelectorAll("#message-list time[datetime]").forEach((node) => {
  node.textContent = formatTime(node.getAttribute("datetime"));
  node.title = new Date(node.getAttribute("datetime")).toLocaleString();
});
markFirstUnread();
if (scroller && list) {
  const target = location.hash.startsWith("#message-") ? byId(location.hash.slice(1)) : null;
  if (target) {
    target.classList.add("highlight");
    target.scrollIntoView({ block: "center" });
  } else {
    scrollToBottom();
  }
}
socket.connect();
