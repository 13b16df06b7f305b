// Telling the person: notices at the top of the room, the screen reader's live region,
// errors under the composer, and mentions.
import { h, byId, sentence } from "./dom.js";
import { MUTE_ALL, muteOf } from "./mute.js";
import { config, isCurrent } from "./page.js";

// ``alarm``: a failure (styled as an error), else information.
export function notice(text, alarm = false, link = null) {
  const box = byId("notices");
  const close = h("button", { type: "button", class: "link notice-close", "aria-label": "Dismiss" }, "×");
  const item = h(
    "p",
    { class: alarm ? "chat-notice error" : "chat-notice info", tabindex: "-1" },
    text,
    link ? " " : null,
    link,
    " ",
    close,
  );
  close.addEventListener("click", () => item.remove());
  box.append(item);
  return item;
}

// Said once by screen readers (a polite live region), shown nowhere.
export function announce(text) {
  const region = byId("live-announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick is announced even when it repeats the last one.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

export function showError(text) {
  const box = byId("composer-error");
  if (!box) {
    notice(sentence(text), true);
    return;
  }
  box.textContent = sentence(text);
  box.hidden = false;
}

export function clearError() {
  const box = byId("composer-error");
  if (box) box.hidden = true;
}

const roomItem = (roomId) => byId("room-list").querySelector(`li[data-room-id="${Number(roomId)}"]`);

export function onMention(roomId, messageId) {
  const name = roomItem(roomId)?.dataset.label ?? "a room"; // the row's label (rooms.js)
  if (isCurrent(roomId) && document.hasFocus()) return; // seen where it happens
  const badge = roomItem(roomId)?.querySelector(".mention-badge");
  if (badge) badge.hidden = false;
  if (muteOf(roomId) === MUTE_ALL) return; // "mute all": marked, never announced
  notice(
    `You were mentioned in ${name}.`,
    false,
    h("a", { href: `${config.urls.portal}?room=${Number(roomId)}#message-${Number(messageId)}` }, "Show"),
  );
}
