// "Add a member" (the room's side panel, for owners and moderators): the username field
// suggests, as a name or @username is typed, the people the directory offers the actor
// (GET /api/v1/people/?q=: active, never a compliance officer, never someone an
// information barrier separates from the actor; rooms.selectors.people_reachable), less
// the room's members. A suggestion is a picker's answer, not a permission: the server
// decides again when the form is posted, and answers anyone it cannot add in one way.
// The combobox (keys, ARIA, announcements) is combobox.js, shared with the composer.
import { api } from "./api.js";
import { personOption } from "./autocomplete.js";
import { combobox } from "./combobox.js";
import { byId } from "./dom.js";
import { announce } from "./notifications.js";
import { roomMembers } from "./people.js";
import { current } from "./page.js";

const SHOWN_AT_MOST = 8;
const ASKED_AT_MOST = 20; // members are left out of the answer: ask for a few more
const TYPING_PAUSE_MS = 150; // one request per pause in typing, not per key

// What is typed, without one leading "@" (the server strips it the same way).
function typedName(field) {
  const text = field.value.trim().replace(/^@/, "");
  return text ? { start: 0, text } : null;
}

async function people(text) {
  // With the room: never someone a barrier keeps out of it (the add would be refused).
  const page = await api(`people/?q=${encodeURIComponent(text.slice(0, 100))}&room=${Number(current.id)}&limit=${ASKED_AT_MOST}`);
  const members = new Set(roomMembers().map((m) => m.user_id));
  const q = text.toLocaleLowerCase();
  // Usernames that start with what was typed first, then by username (the API pages by id).
  return page.results
    .filter((p) => !members.has(p.id))
    .sort((a, b) => Number(!a.username.startsWith(q)) - Number(!b.username.startsWith(q)) || a.username.localeCompare(b.username))
    .slice(0, SHOWN_AT_MOST)
    .map((p) => ({ username: p.username, name: p.display_name }));
}

export function initMemberPicker() {
  const field = byId("add-username");
  if (!field) return;
  combobox({
    field,
    id: "add-member-listbox",
    label: "People you can add",
    className: "suggestions member-suggestions",
    container: field.closest(".picker"),
    query: typedName,
    suggest: people,
    option: personOption,
    choose(person) {
      field.value = person.username;
      announce(`${person.name || person.username} picked. Press Enter to add.`);
    },
    delay: TYPING_PAUSE_MS,
    openOnArrow: true,
    counted: (count) =>
      count === 0 ? "No one to add by that name."
      : count === 1 ? "1 person to add. Press Enter to pick, Escape to close."
      : `${count} people to add. Up and Down to choose, Enter to pick, Escape to close.`,
  });
}
