// @-mention suggestions in the composer: typing "@" and part of a name lists the room's
// members whose username or display name matches; Up/Down move, Enter or Tab insert
// "@username ", Escape closes. The number of suggestions is announced.
//
// WAI-ARIA combobox pattern with a listbox popup (APG "Editable Combobox With List
// Autocomplete"). A <textarea> cannot take role="combobox" (ARIA in HTML allows it no
// role), so it keeps its textbox role and carries what a textbox may: aria-autocomplete,
// aria-controls and aria-activedescendant, which screen readers follow the same way.
import { h, byId } from "./dom.js";
import { announce } from "./notifications.js";
import { me } from "./page.js";
import { roomMembers } from "./people.js";

const SHOWN_AT_MOST = 8;
// "@" at the start or after something that cannot end a name (as the server reads it:
// rooms/markdown.py MENTION), then what is typed of the name, up to the caret.
const TYPED = /(?:^|[^\p{L}\p{N}_@])@([\p{L}\p{N}_.@+-]{0,150})$/u;

let input = null;
let listbox = null;
let options = []; // members shown
let active = -1;
let typed = null; // { start, query }: where the "@" is, and what follows it
let lastAnnounced = null;

export const isOpen = () => listbox !== null && !listbox.hidden;

function matches(member, query) {
  if (!query) return true;
  const q = query.toLocaleLowerCase();
  const name = (member.name || "").toLocaleLowerCase();
  return member.username.startsWith(q) || name.startsWith(q) || name.split(/\s+/).some((w) => w.startsWith(q));
}

function candidates(query) {
  const q = query.toLocaleLowerCase();
  return roomMembers()
    .filter((m) => m.user_id !== me.id && matches(m, query))
    .sort((a, b) => Number(!a.username.startsWith(q)) - Number(!b.username.startsWith(q)) || a.username.localeCompare(b.username))
    .slice(0, SHOWN_AT_MOST);
}

function optionId(index) {
  return `mention-option-${index}`;
}

function render() {
  listbox.replaceChildren(
    ...options.map((m, i) =>
      h(
        "li",
        { id: optionId(i), role: "option", class: "mention-option", "aria-selected": i === active ? "true" : "false", dataset: { index: i } },
        h("bdi", { class: "mention-option-name" }, m.name || m.username),
        " ",
        h("span", { class: "muted" }, "@", h("bdi", {}, m.username)),
      ),
    ),
  );
  if (active >= 0) {
    input.setAttribute("aria-activedescendant", optionId(active));
    byId(optionId(active))?.scrollIntoView({ block: "nearest" });
  } else {
    input.removeAttribute("aria-activedescendant");
  }
}

export function close() {
  if (!listbox) return;
  listbox.hidden = true;
  listbox.replaceChildren();
  options = [];
  active = -1;
  typed = null;
  lastAnnounced = null;
  input.removeAttribute("aria-activedescendant");
}

function update() {
  const caret = input.selectionStart;
  if (caret !== input.selectionEnd) {
    close();
    return;
  }
  const found = TYPED.exec(input.value.slice(0, caret));
  if (!found) {
    close();
    return;
  }
  typed = { start: caret - found[1].length - 1, query: found[1] };
  options = candidates(found[1]);
  if (!options.length) {
    close();
    announceCount(0);
    return;
  }
  active = 0;
  listbox.hidden = false;
  render();
  announceCount(options.length);
}

function announceCount(count) {
  if (count === lastAnnounced) return;
  lastAnnounced = count;
  if (count === 0) return;
  announce(
    count === 1
      ? "1 person to mention. Press Enter or Tab to insert, Escape to close."
      : `${count} people to mention. Up and Down to choose, Enter or Tab to insert, Escape to close.`,
  );
}

function choose(index) {
  const member = options[index];
  if (!member || !typed) return;
  const before = input.value.slice(0, typed.start);
  const after = input.value.slice(input.selectionStart);
  const inserted = `@${member.username} `;
  input.value = before + inserted + after.replace(/^ /, "");
  const caret = before.length + inserted.length;
  input.setSelectionRange(caret, caret);
  close();
  announce(`${member.name || member.username} inserted.`);
  input.focus();
}

function onKeydown(event) {
  if (!isOpen() || event.isComposing) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    active = (active + step + options.length) % options.length;
    render();
  } else if ((event.key === "Enter" && !event.shiftKey) || (event.key === "Tab" && !event.shiftKey)) {
    event.preventDefault(); // neither sends the message nor leaves the composer
    choose(active);
  } else if (event.key === "Escape") {
    event.preventDefault(); // closes the list only, not the reply or edit
    close();
  }
}

// ``box``: the composer's textarea. Its keydown handler is added before the composer's,
// which leaves a key this one handled (defaultPrevented) alone.
export function initAutocomplete(box) {
  input = box;
  listbox = h("ul", { id: "mention-listbox", class: "mention-listbox", role: "listbox", "aria-label": "People to mention", hidden: true });
  box.closest(".composer-row").append(listbox);
  box.setAttribute("aria-autocomplete", "list");
  box.setAttribute("aria-controls", listbox.id);
  box.addEventListener("keydown", onKeydown);
  box.addEventListener("input", update);
  box.addEventListener("click", update);
  box.addEventListener("blur", () => setTimeout(close, 150));
  // The mouse picks without taking focus from the composer.
  listbox.addEventListener("mousedown", (event) => {
    const option = event.target.closest("[role=option]");
    if (!option) return;
    event.preventDefault();
    choose(Number(option.dataset.index));
  });
}
