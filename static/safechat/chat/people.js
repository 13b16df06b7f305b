// The room's members and their presence. Owns the member and presence maps.
import { api } from "./api.js";
import { h, hidden, byId } from "./dom.js";
import { notice } from "./notifications.js";
import { config, current, csrfToken, FRAME, isCurrent, me, MEMBER_CHANGE } from "./page.js";
import { fullLabel } from "./rooms.js";
import * as socket from "./socket.js";

const members = new Map((current?.members ?? []).map((m) => [m.user_id, m]));
const presence = new Map(); // user id -> "online" | "away" | "offline" | "unknown"

// How a member is shown: their display name (full name, else username).
export function nameOf(userId) {
  const member = members.get(userId);
  return member?.name || member?.username || "Someone";
}

// One member ({user_id, username, name, role}), or undefined; their presence.
export const memberOf = (userId) => members.get(Number(userId));
export const presenceOf = (userId) => presence.get(Number(userId)) ?? "unknown";

// The room's members, for the composer's @-mention suggestions.
export function roomMembers() {
  return [...members.values()];
}

const presenceWords = { online: "online", away: "away", offline: "offline", unknown: "" };

export function setPresence(userId, state) {
  presence.set(userId, state);
  const item = byId("member-list")?.querySelector(`li[data-user-id="${Number(userId)}"]`);
  if (!item) return;
  const dot = item.querySelector(".presence");
  dot.dataset.state = state;
  dot.title = state === "unknown" ? "presence unknown" : presenceWords[state];
  item.querySelector(".presence-text").textContent = state === "unknown" ? "" : `, ${presenceWords[state]}`;
}

// Offline, we no longer learn who comes and goes: show presence as unknown.
export function forgetPresence() {
  for (const userId of [...presence.keys()]) setPresence(userId, "unknown");
}

// On (re)connection: our own state, and who is here already.
export function announcePresence() {
  const away = document.visibilityState === "hidden";
  if (away) socket.send({ type: FRAME.PRESENCE, state: "away" });
  setPresence(me.id, away ? "away" : "online");
  if (current) socket.send({ type: FRAME.PRESENCE_GET, room_id: current.id });
}

export function onPresence(roomId, userId, state) {
  if (!isCurrent(roomId)) return;
  setPresence(userId, state);
}

export function onPresenceSnapshot(roomId, states) {
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
  const name = member.name || member.username;
  const roleLabel = current.role_labels[member.role] ?? member.role;
  const state = presence.get(member.user_id) ?? "unknown";
  const item = h(
    "li",
    { class: "member", dataset: { userId: member.user_id } },
    h(
      "div",
      { class: "member-line" },
      h("span", {
        class: "presence",
        "aria-hidden": "true",
        title: state === "unknown" ? "presence unknown" : presenceWords[state],
        dataset: { state },
      }),
      " ",
      h("bdi", { class: "member-name" }, name),
      " ",
      h("span", { class: "member-username muted" }, "@", h("bdi", {}, member.username)),
      member.user_id === me.id ? h("span", { class: "muted" }, " (you)") : null,
      h("span", { class: "presence-text visually-hidden" }, state !== "unknown" ? `, ${presenceWords[state]}` : ""),
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
        h(
          "form",
          { method: "post", action: `${base}/role/`, class: "member-form" },
          csrfInput(),
          h("label", { for: `role-${member.user_id}` }, "Role"),
          select,
          h("button", { type: "submit" }, "Change role"),
        ),
        h(
          "form",
          { method: "post", action: `${base}/remove/`, class: "member-form" },
          csrfInput(),
          h(
            "button",
            { type: "submit", class: "danger", dataset: { confirm: `Remove ${name} (@${member.username}) from ${fullLabel(current.label)}? They lose access at once.` } },
            "Remove from room",
          ),
        ),
      ),
    );
  }
  return item;
}

// Every member of a room, page by page (the API pages by user id), by username.
async function allMembers(roomId) {
  const rows = [];
  let after = null;
  do {
    const cursor = after === null ? "" : `&after=${after}`;
    const page = await api(`rooms/${roomId}/members/?limit=100${cursor}`, { background: true });
    rows.push(...page.results);
    after = page.has_more ? page.next_after : null;
  } while (after !== null);
  return rows.sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0));
}

export async function onMembersChanged(roomId) {
  if (!isCurrent(roomId)) return;
  try {
    const rows = await allMembers(current.id);
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

// The messages on the page from ``userId`` show their display name as it is now.
function renameSender(userId) {
  const name = nameOf(userId);
  for (const item of document.querySelectorAll(`li.message-item[data-sender-id="${Number(userId)}"]`)) {
    const sender = item.querySelector(":scope > article .msg-sender");
    if (sender) sender.textContent = name;
  }
}

export async function onMemberUpdated(roomId, userId, change) {
  await onMembersChanged(roomId);
  if (!isCurrent(roomId)) return;
  if (change === MEMBER_CHANGE.NAME) {
    renameSender(userId);
    if (userId === me.id) me.name = nameOf(userId); // what this tab's pending posts show
  } else if (userId === me.id) {
    notice("Your role in this room changed.", false, h("a", { href: `${config.urls.portal}?room=${current.id}` }, "Reload to update the page"));
  }
}
