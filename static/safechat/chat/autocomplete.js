// @-mention suggestions in the composer: typing "@" and part of a name lists the room's
// members whose username or display name matches; Up/Down move, Enter or Tab insert
// "@username ", Escape closes. The number of suggestions is announced. The combobox
// itself (keys, ARIA, announcements) is combobox.js, shared with the other pickers.
import { combobox } from "./combobox.js";
import { h } from "./dom.js";
import { announce } from "./notifications.js";
import { me } from "./page.js";
import { roomMembers } from "./people.js";

const SHOWN_AT_MOST = 8;
// "@" at the start or after something that cannot end a name (as the server reads it:
// rooms/markdown.py MENTION), then what is typed of the name, up to the caret.
const TYPED = /(?:^|[^\p{L}\p{N}_@])@([\p{L}\p{N}_.@+-]{0,150})$/u;

let suggestions = null;

export const isOpen = () => suggestions !== null && suggestions.isOpen();
export const close = () => suggestions?.close();

// Whether ``person`` ({username, name}) is found by ``query``: a prefix of the username,
// of the display name, or of any word of it. Shared with the member picker.
export function personMatches(person, query) {
  if (!query) return true;
  const q = query.toLocaleLowerCase();
  const name = (person.name || "").toLocaleLowerCase();
  return person.username.startsWith(q) || name.startsWith(q) || name.split(/\s+/).some((w) => w.startsWith(q));
}

// An option's content: the display name, then the username in muted text.
export function personOption(person) {
  return [
    h("bdi", { class: "suggestion-name" }, person.name || person.username),
    " ",
    h("span", { class: "muted" }, "@", h("bdi", {}, person.username)),
  ];
}

function candidates(query) {
  const q = query.toLocaleLowerCase();
  return roomMembers()
    .filter((m) => m.user_id !== me.id && personMatches(m, query))
    .sort((a, b) => Number(!a.username.startsWith(q)) - Number(!b.username.startsWith(q)) || a.username.localeCompare(b.username))
    .slice(0, SHOWN_AT_MOST);
}

function typedMention(box) {
  const caret = box.selectionStart;
  const found = TYPED.exec(box.value.slice(0, caret));
  return found ? { start: caret - found[1].length - 1, text: found[1] } : null;
}

function insert(box, member, typed) {
  const before = box.value.slice(0, typed.start);
  const after = box.value.slice(box.selectionStart);
  const inserted = `@${member.username} `;
  box.value = before + inserted + after.replace(/^ /, "");
  const caret = before.length + inserted.length;
  box.setSelectionRange(caret, caret);
  announce(`${member.name || member.username} inserted.`);
}

// ``box``: the composer's textarea. Its keydown handler is added before the composer's,
// which leaves a key this one handled (defaultPrevented) alone.
export function initAutocomplete(box) {
  suggestions = combobox({
    field: box,
    id: "mention-listbox",
    optionIds: "mention-option",
    label: "People to mention",
    className: "suggestions mention-listbox",
    container: box.closest(".composer-row"),
    query: typedMention,
    suggest: candidates,
    option: personOption,
    choose: (member, typed) => insert(box, member, typed),
    tabPicks: true,
    counted: (count) =>
      count === 0 ? ""
      : count === 1 ? "1 person to mention. Press Enter or Tab to insert, Escape to close."
      : `${count} people to mention. Up and Down to choose, Enter or Tab to insert, Escape to close.`,
  });
}
