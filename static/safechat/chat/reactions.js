// Reacting to a message: toggling a reaction (a chip, or an emoji picked), and the
// reaction picker a message's "React" button opens: a row of quick reactions (from the
// page's configuration) and a search of every emoji the server offers (GET
// config.urls.emoji: the emoji package's data, rooms/reaction_picker.py, fetched once).
//
// The picker is a non-modal dialog inside the message: focus goes to its first quick
// reaction; Tab reaches the others and the search, a combobox (combobox.js); Escape, or
// picking an emoji, closes it and puts focus back on the message's "React" button;
// focus or a click going elsewhere closes it where they went.
import { api } from "./api.js";
import { combobox } from "./combobox.js";
import { h, hidden, personLabel } from "./dom.js";
import { announce, showError } from "./notifications.js";
import { config, current } from "./page.js";

const SHOWN_AT_MOST = 30;

let all = null; // a promise of [[emoji, name, aliases], ...], once asked
let open = null; // { picker, trigger, messageId }

// Add ``emoji`` from this person to the message, or take it back.
export function toggleReaction(messageId, emoji) {
  return api(`rooms/${current.id}/messages/${messageId}/reactions/`, {
    method: "POST",
    body: { emoji },
  }).catch((error) => showError(error.message));
}

function emojiList() {
  if (all === null) {
    all = fetch(config.urls.emoji, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => {
        if (!response.ok) throw new Error(`the emoji list could not be loaded (${response.status})`);
        return response.json();
      })
      .then((body) => body.emoji)
      .catch((error) => {
        all = null; // asked again next time
        showError(error.message);
        return [];
      });
  }
  return all;
}

// Names that start with what was typed first, then a word of the name, then another
// name for it ("+1", "thumbsup").
async function search(text) {
  const q = text.trim().toLocaleLowerCase();
  const ranked = [];
  for (const [emoji, name, aliases] of await emojiList()) {
    const rank =
      name.startsWith(q) ? 0
      : name.split(" ").some((w) => w.startsWith(q)) ? 1
      : aliases.split(" ").some((w) => w.startsWith(q)) ? 2
      : name.includes(q) ? 3
      : -1;
    if (rank >= 0) ranked.push({ emoji, name, rank });
  }
  ranked.sort((a, b) => a.rank - b.rank);
  return ranked.slice(0, SHOWN_AT_MOST);
}

export function closePicker({ refocus = false } = {}) {
  if (!open) return;
  const { picker, trigger } = open;
  open = null;
  picker.remove();
  trigger.setAttribute("aria-expanded", "false");
  if (refocus && trigger.isConnected) trigger.focus();
}

function react(emoji, name) {
  const { messageId } = open;
  closePicker({ refocus: true });
  toggleReaction(messageId, emoji);
  announce(`Reacted with ${name || emoji}.`);
}

function pressedIn(article) {
  return new Set(
    [...article.querySelectorAll(".msg-reactions .reaction[aria-pressed=true]")].map((b) => b.dataset.emoji),
  );
}

// ``trigger``: the message's "React" button; ``messageId``: the message.
export function openPicker(trigger, messageId) {
  if (open?.trigger === trigger) {
    closePicker({ refocus: true });
    return;
  }
  closePicker();
  const article = trigger.closest("article");
  const sender = personLabel(article.querySelector(".msg-sender")?.textContent ?? "", article.querySelector(".msg-username bdi")?.textContent ?? "");
  const mine = pressedIn(article);
  const quick = h(
    "div",
    { class: "reaction-quick", role: "group", "aria-label": "Quick reactions" },
    ...(config.reactions?.quick ?? []).map(({ emoji, name }) =>
      h(
        "button",
        {
          type: "button",
          class: "reaction-choice",
          title: name,
          "aria-label": name ? `React with ${name}` : `React with ${emoji}`,
          "aria-pressed": mine.has(emoji) ? "true" : "false",
          dataset: { emoji },
        },
        emoji,
      ),
    ),
  );
  const searchId = `reaction-search-${messageId}`;
  const field = h("input", { id: searchId, type: "text", autocomplete: "off", spellcheck: "false", "aria-describedby": `${searchId}-help` });
  const picker = h(
    "div",
    { class: "reaction-picker", role: "dialog", "aria-label": `Add a reaction to the message from ${sender}` },
    quick,
    h("label", { for: searchId }, "Search emoji"),
    h("div", { class: "picker" }, field),
    h(
      "p",
      { id: `${searchId}-help`, class: "pane-hint" },
      "A name such as “rocket” or “check”: ",
      h("kbd", {}, "↓"), " ", h("kbd", {}, "↑"), " to choose, ", h("kbd", {}, "Enter"), " to react, ",
      h("kbd", {}, "Esc"), " to close.",
    ),
  );
  trigger.closest(".msg-actions").after(picker);
  // Opens towards the larger part of the message list on screen (the results grow it).
  const shown = picker.closest(".message-scroller")?.getBoundingClientRect();
  const at = trigger.getBoundingClientRect();
  if (shown) picker.classList.toggle("upward", at.top - shown.top > shown.bottom - at.bottom);
  open = { picker, trigger, messageId };
  trigger.setAttribute("aria-expanded", "true");

  combobox({
    field,
    id: `${searchId}-listbox`,
    label: "Emoji",
    className: "suggestions emoji-suggestions",
    container: field.parentElement,
    query: (f) => (f.value.trim() ? { start: 0, text: f.value } : null),
    suggest: search,
    option: (item) => [h("span", { class: "emoji-glyph", "aria-hidden": "true" }, item.emoji), " ", item.name, hidden(` ${item.emoji}`)],
    choose: (item) => react(item.emoji, item.name),
    openOnArrow: true,
    counted: (count) =>
      count === 0 ? "No emoji by that name."
      : count === 1 ? "1 emoji. Press Enter to react, Escape to close the list."
      : `${count} emoji. Up and Down to choose, Enter to react, Escape to close the list.`,
  });

  quick.addEventListener("click", (event) => {
    const choice = event.target.closest(".reaction-choice");
    if (choice) react(choice.dataset.emoji, choice.title);
  });
  picker.addEventListener("click", (event) => event.stopPropagation()); // not the list's
  picker.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented) {
      event.preventDefault();
      event.stopPropagation();
      closePicker({ refocus: true });
    }
  });
  picker.addEventListener("focusout", (event) => {
    const to = event.relatedTarget;
    if (to && !picker.contains(to) && to !== trigger) closePicker();
  });
  emojiList(); // ready by the time a name is typed
  picker.scrollIntoView({ block: "nearest" });
  quick.querySelector("button")?.focus();
}

export function initReactions() {
  // A click anywhere else closes the picker (where the click went keeps the focus).
  document.addEventListener("mousedown", (event) => {
    if (open && !open.picker.contains(event.target) && event.target !== open.trigger) closePicker();
  });
}
