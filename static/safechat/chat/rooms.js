// The room list: unread badges, rooms granted, revoked, renamed, archived and muted, the
// open room's "Notifications" selector, and Alt+Up / Alt+Down to switch rooms. A room is
// shown by its label for this person (the API's `label`, rooms.selectors.room_labels): a
// direct conversation by the other people in it, and a qualifier ("#12", "@alice") where
// two rooms would look alike; the list, the title and every notice use the same one.
import { api } from "./api.js";
import { h, hidden, byId, sentence } from "./dom.js";
import { MUTE_OFF, applyMute } from "./mute.js";
import { notice } from "./notifications.js";
import { config, current, isCurrent } from "./page.js";
import { forgetRoom, startRoom } from "./sync.js";

const roomList = () => byId("room-list");
const roomItem = (roomId) => roomList().querySelector(`li[data-room-id="${Number(roomId)}"]`);

export function setUnread(roomId, count) {
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

export function bumpUnread(roomId) {
  const badge = roomItem(roomId)?.querySelector(".badge");
  if (badge) setUnread(roomId, Number(badge.dataset.unread || 0) + 1);
}

// A label as plain text: what a notice, a notification or the window's title says.
// Mirrors RoomLabel.full (rooms/selectors.py).
export function fullLabel(label) {
  return label.qualifier ? `${label.text} (${label.qualifier})` : label.text;
}

// The other people's usernames, a direct conversation's tooltip. Mirrors RoomLabel.hint.
const labelHint = (label) => label.usernames.map((name) => `@${name}`).join(", ");

// The label's text and, where it has one, its qualifier: each isolated (bidi).
function labelNodes(label, textClass) {
  const text = h("bdi", { class: textClass }, label.text);
  if (!label.qualifier) return [text];
  return [text, " ", h("span", { class: "room-qualifier" }, "(", h("bdi", {}, label.qualifier), ")")];
}

// What a room in the list is called, from its row: the same text the row shows.
function roomLabelOf(roomId, fallback = "a room") {
  return roomItem(roomId)?.dataset.label ?? fallback;
}

// Mirrors the room rows of templates/rooms/chat.html.
function roomEntry(room, mentioned) {
  const hint = labelHint(room.label);
  const link = h(
    "a",
    {
      href: `${config.urls.portal}?room=${room.id}`,
      "aria-current": isCurrent(room.id) ? "page" : null,
      title: hint || null,
    },
    h("span", { class: "room-kind", "aria-hidden": "true" }, room.kind === "direct" ? "@" : "#"),
    " ",
    ...labelNodes(room.label, "room-name"),
    room.archived ? hidden(" (archived)") : null,
    h(
      "span",
      { class: "mute-mark", title: "Muted", hidden: (room.mute ?? MUTE_OFF) === MUTE_OFF },
      h("span", { "aria-hidden": "true" }, "🔕"),
      hidden(" (muted)"),
    ),
    h("span", { class: "mention-badge", hidden: !mentioned }, "@", hidden(" you were mentioned")),
    h("span", { class: "badge", dataset: { unread: room.unread ?? 0 }, hidden: !room.unread }),
  );
  return h(
    "li",
    {
      class: room.archived ? "room-item archived" : "room-item",
      dataset: { roomId: room.id, kind: room.kind, mute: room.mute ?? MUTE_OFF, label: fullLabel(room.label) },
    },
    link,
  );
}

// Every room of the person, page by page (the API pages by room id), in the list's order:
// live rooms first, then by label (rooms.selectors.room_list_labelled), then by id.
async function allRooms() {
  const rows = [];
  let after = null;
  do {
    const cursor = after === null ? "" : `&after=${after}`;
    const page = await api(`rooms/?limit=100${cursor}`, { background: true });
    rows.push(...page.results);
    after = page.has_more ? page.next_after : null;
  } while (after !== null);
  const key = (r) => [r.archived ? 1 : 0, r.label.text.toLowerCase(), r.id];
  return rows.sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    for (let i = 0; i < x.length; i += 1) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
  });
}

async function refreshRoomList() {
  const rooms = await allRooms();
  const mentioned = new Set(
    [...roomList().querySelectorAll(".mention-badge:not([hidden])")].map((m) =>
      Number(m.closest("li").dataset.roomId),
    ),
  );
  const focusedRoom = document.activeElement?.closest?.("#room-list li")?.dataset.roomId;
  roomList().replaceChildren(...rooms.map((room) => roomEntry(room, mentioned.has(room.id))));
  for (const room of rooms) {
    setUnread(room.id, isCurrent(room.id) ? 0 : room.unread ?? 0);
  }
  if (focusedRoom) roomItem(focusedRoom)?.querySelector("a")?.focus();
  // The open room's label may have changed with another's (a qualifier comes or goes).
  const open = rooms.find((room) => isCurrent(room.id));
  if (open) showTitle(open);
  return rooms;
}

// What a new room in one's list is announced as. A direct conversation's people are fixed
// when it starts, so one with one other person was started by them; a group's starter is
// one of its people: "with" them, then.
function grantedText(room) {
  if (room.kind !== "direct") return `You were added to ${fullLabel(room.label)}.`;
  if (room.label.usernames.length === 1) return `${fullLabel(room.label)} started a conversation with you.`;
  return `You were added to a conversation with ${fullLabel(room.label)}.`;
}

export async function onRoomGranted(roomId) {
  try {
    const rooms = await refreshRoomList();
    const room = rooms.find((r) => r.id === Number(roomId));
    // Start this room's sync cursor at its newest message, not at the beginning of history.
    const page = await api(`rooms/${Number(roomId)}/messages/?limit=1`, { background: true });
    startRoom(Number(roomId), page.results[0]);
    if (room) {
      notice(grantedText(room), false, h("a", { href: `${config.urls.portal}?room=${room.id}` }, "Open it"));
    }
  } catch (error) {
    notice(sentence(`could not refresh your rooms: ${error.message}`), true);
  }
}

export function onRoomRevoked(roomId) {
  roomId = Number(roomId);
  const name = roomLabelOf(roomId);
  roomItem(roomId)?.remove();
  forgetRoom(roomId);
  if (!isCurrent(roomId)) {
    notice(`You were removed from ${name}.`);
    return;
  }
  // Nothing of a room one has left stays on screen.
  byId("message-list")?.replaceChildren();
  byId("load-older")?.remove();
  byId("composer")?.remove();
  document.querySelector(".chat-side")?.remove();
  const item = notice(`You no longer have access to ${name}. Its messages were removed from this page.`, true);
  item.focus();
}

export async function onRoomUpdated(roomId) {
  try {
    await refreshRoomList(); // the open room's header too
  } catch (error) {
    notice(sentence(`could not refresh your rooms: ${error.message}`), true);
  }
}

// The open room's heading, as templates/rooms/chat.html renders it, the window's title and
// the other places that name the room (the message list, the composer).
function showTitle(room) {
  const title = byId("room-title");
  const hint = labelHint(room.label);
  const kind = room.kind === "direct" ? "@" : "#";
  const full = fullLabel(room.label);
  title.replaceChildren(kind, " ", ...labelNodes(room.label, "room-label"));
  if (hint) title.title = hint;
  else title.removeAttribute("title");
  byId("room-topic").textContent = room.topic;
  document.title = `${full} · SafeChat`;
  byId("message-list")?.setAttribute("aria-label", `Messages in ${full}`);
  byId("composer-input")?.setAttribute("placeholder", `Message ${room.kind === "direct" ? "" : "#"}${full}`);
  const composerLabel = document.querySelector('label[for="composer-input"]');
  if (composerLabel) composerLabel.textContent = `Message ${full}`;
  current.label = room.label;
}

// Someone in a direct conversation changed their display name: it is what the
// conversation is called, in the list and the title.
export function onPersonRenamed(roomId) {
  if (roomItem(roomId)?.dataset.kind === "direct") onRoomUpdated(roomId);
}

export function onRoomArchived(roomId) {
  onRoomUpdated(roomId);
  if (!isCurrent(roomId)) return;
  byId("composer")?.replaceWith(
    h("p", { class: "composer-readonly muted" }, "This room was archived: it stays readable and nobody can post."),
  );
  byId("message-list")?.querySelectorAll(".msg-actions").forEach((a) => a.remove());
  notice("This room was archived.");
}

// room.muted: the person changed the setting (in this tab, or another).
export function onRoomMuted(roomId, mute) {
  applyMute(roomId, mute);
}

const MUTED_SAID = {
  off: "Room unmuted: it notifies you again.",
  messages: "Room muted: only mentions of you notify you.",
  all: "Room muted, mentions of you too.",
};

// The header's "Notifications" form, without a page load (the form posts on its own
// without this script).
function initMuteForm() {
  const form = byId("room-mute-form");
  const select = byId("room-mute");
  if (!form || !select || !current) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const mute = select.value;
    try {
      const room = await api(`rooms/${current.id}/mute/`, { method: "POST", body: { mute } });
      applyMute(current.id, room.mute);
      notice(MUTED_SAID[room.mute] ?? "Saved.");
    } catch (error) {
      notice(sentence(`could not change the notifications: ${error.message}`), true);
    }
  });
}

export function initRooms() {
  initMuteForm();
  // Alt+Up / Alt+Down: the previous or next room, from anywhere on the page.
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
    const links = [...roomList().querySelectorAll("li.room-item > a")];
    if (!links.length) return;
    event.preventDefault();
    const at = links.findIndex((a) => a.getAttribute("aria-current") === "page");
    const next = event.key === "ArrowUp" ? at - 1 : at + 1;
    const target = links[Math.max(0, Math.min(links.length - 1, at === -1 ? 0 : next))];
    if (target.getAttribute("aria-current") !== "page") location.assign(target.href);
  });
}

