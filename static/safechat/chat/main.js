// SafeChat chat portal (templates/rooms/chat.html): the entry module. Native ES modules,
// no build step, split by concern the way Zulip's web/src is:
//   page.js           what the server put in the page (configuration, socket names, user)
//   dom.js, times.js  DOM and time helpers (text only, never markup)
//   api.js            the REST API
//   socket.js         the WebSocket: backoff, ping, connection state
//   sync.js           catch-up by the paged `sync` protocol; the per-room cursors
//   session.js        the session's time limits
//   messages.js       the message list
//   reactions.js      reacting: chips, the reaction picker (quick row, emoji search)
//   composer.js       posting, replying, editing, typing
//   rooms.js          the room list, the open room's notification setting
//   mute.js           how each room notifies this person (muted or not)
//   people.js         members and presence
//   notifications.js  notices, the live region, errors, mentions
//   combobox.js       the one editable combobox with a listbox (every picker uses it)
//   autocomplete.js   @-mention suggestions in the composer (used by composer.js)
//   memberpicker.js   "Add a member": people one may add, suggested as typed
//   desktop.js        opt-in desktop notifications for mentions and direct messages
//   uploads.js        sharing files: picker, drag-and-drop, paste, progress (tus)
// This module routes the server's frames to them, connects the message list to the
// composer, and starts the page. The import graph has no cycle: collectstatic's hashed
// names (tests/safechat/test_static_files.py) cannot be computed for a cycle.
import {
  cancelMode,
  clearTyping,
  dropPlaceholder,
  flushOutbox,
  initComposer,
  isEditing,
  markUnconfirmed,
  onAck,
  onErrorFrame,
  onTyping,
  startEdit,
  startReply,
} from "./composer.js";
import { initDesktopNotifications, notifyMessage } from "./desktop.js";
import { initMemberPicker } from "./memberpicker.js";
import { initMessages, maybeMarkRead, onMessageChanged, onMessageDeleted, onMessageNew } from "./messages.js";
import { initProfileCards } from "./profilecard.js";
import { initReactions } from "./reactions.js";
import { onMention } from "./notifications.js";
import { EVENT, FRAME, me, MEMBER_CHANGE } from "./page.js";
import {
  announcePresence,
  forgetPresence,
  onMembersChanged,
  onMemberUpdated,
  onPresence,
  onPresenceSnapshot,
} from "./people.js";
import {
  initRooms,
  onRoomArchived,
  onRoomGranted,
  onRoomMuted,
  onPersonRenamed,
  onRoomRevoked,
  onRoomUpdated,
  setUnread,
} from "./rooms.js";
import { endedDetail, hideExpiry, initSession, noteEnded, showExpiry } from "./session.js";
import * as socket from "./socket.js";
import { onSyncDone, syncAll } from "./sync.js";
import { initUploads, onFileShared } from "./uploads.js";

// Every event a client hears has its handler here (tests/safechat/test_events.py checks).
const handlers = {
  [EVENT.MESSAGE_NEW]: (f) => {
    onMessageNew(f.room_id, f.message);
    notifyMessage(f.room_id, f.message);
  },
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
  [EVENT.MEMBER_UPDATED]: (f) => {
    onMemberUpdated(f.room_id, f.user_id, f.change);
    if (f.change === MEMBER_CHANGE.NAME) onPersonRenamed(f.room_id); // a conversation's label
  },
  [EVENT.ROOM_GRANTED]: (f) => onRoomGranted(f.room_id),
  [EVENT.ROOM_REVOKED]: (f) => onRoomRevoked(f.room_id),
  [EVENT.ROOM_UPDATED]: (f) => onRoomUpdated(f.room_id),
  [EVENT.ROOM_ARCHIVED]: (f) => onRoomArchived(f.room_id),
  [EVENT.ROOM_MUTED]: (f) => onRoomMuted(f.room_id, f.mute),
  [EVENT.MENTION]: (f) => onMention(f.room_id, f.message_id),
  [EVENT.ACK]: (f) => onAck(f.client_id, f.message_id),
  [EVENT.ERROR]: (f) => onErrorFrame(f),
  [EVENT.SYNC_DONE]: (f) => {
    onSyncDone(f.more);
    maybeMarkRead();
  },
  [EVENT.SESSION_EXPIRING]: (f) => showExpiry(f),
  [EVENT.SESSION_EXTENDED]: () => hideExpiry(),
  [EVENT.SESSION_ENDED]: (f) => noteEnded(f.reason),
  [EVENT.PONG]: () => {},
};

initSession();
initRooms();
initDesktopNotifications();
initComposer();
initMemberPicker();
initReactions();
initProfileCards();
initUploads();
initMessages({
  reply: startReply,
  edit: startEdit,
  arrived(message) {
    clearTyping(message.sender_id);
    dropPlaceholder(message.id); // its pending stand-in, once acknowledged
    if (message.attachment) onFileShared(message.attachment.id);
  },
  deleted(messageId) {
    if (isEditing(messageId)) cancelMode();
  },
});

window.addEventListener("online", () => socket.retryNow());
window.addEventListener("focus", maybeMarkRead);
document.addEventListener("visibilitychange", () => {
  socket.send({ type: FRAME.PRESENCE, state: document.visibilityState === "visible" ? "online" : "away" });
  if (document.visibilityState === "visible") {
    maybeMarkRead();
    socket.retryNow();
  }
});

socket.connect({
  open() {
    // Everything newer than what this page has seen, for every room it knows.
    syncAll();
    announcePresence();
    flushOutbox();
  },
  frame(frame) {
    handlers[frame?.type]?.(frame);
  },
  close() {
    markUnconfirmed();
    forgetPresence();
  },
  ended() {
    hideExpiry();
    socket.setConnectionState("ended", endedDetail());
    concealSignedOut();
  },
});

// The session is over (signed out here or in another tab, expired, ended by an admin):
// what the page shows is no longer this person's to read on a shared desk, and nothing
// typed now could be sent. The messages and members go, the composer is shut; signing
// in again loads the room afresh.
function concealSignedOut() {
  for (const id of ["message-list", "member-list", "uploads"]) {
    document.getElementById(id)?.replaceChildren();
  }
  const composer = document.getElementById("composer");
  if (composer) {
    for (const field of composer.querySelectorAll("textarea, input, button")) field.disabled = true;
    const input = document.getElementById("composer-input");
    if (input) input.value = "";
  }
}
