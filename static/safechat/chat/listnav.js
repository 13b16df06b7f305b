// Moving through the message list by keyboard (WAI-ARIA APG, "roving tabindex"):
// the list is one tab stop, the active message; Up and Down move between messages
// (replies included, in reading order), Home and End to the first and last. The
// controls of the other messages leave the tab order, so Shift+Tab from the composer
// reaches the list at once; Alt+M goes to the messages and Alt+C to the composer from
// anywhere (documented in the composer's help line).
import { byId } from "./dom.js";

const MESSAGES = ".message-item > article.msg";
const CONTROLS = "button, a[href], summary, input, select, textarea";
let list = null;
let active = null;
let queued = false;

// The messages on screen, in reading order (replies of a hidden thread are not).
export function messageArticles() {
  return list ? [...list.querySelectorAll(MESSAGES)].filter((a) => a.getClientRects().length > 0) : [];
}

function apply() {
  queued = false;
  const all = messageArticles();
  if (!all.includes(active)) active = all.at(-1) ?? null;
  for (const article of all) {
    const on = article === active;
    article.tabIndex = on ? 0 : -1;
    for (const control of article.querySelectorAll(CONTROLS)) {
      if (on) control.removeAttribute("tabindex");
      else control.tabIndex = -1;
    }
  }
}

function later() {
  if (queued) return;
  queued = true;
  queueMicrotask(apply);
}

// Focus a message (an article), making it the list's tab stop.
export function focusMessage(article) {
  if (!article) return false;
  active = article;
  apply();
  article.focus();
  return true;
}

export function focusActiveMessage() {
  apply();
  return focusMessage(active) || (list?.focus(), false);
}

function onKeydown(event) {
  if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const onList = event.target === list;
  if (!onList && !event.target.matches?.(MESSAGES)) return;
  const all = messageArticles();
  if (!all.length) return;
  const at = onList ? -1 : all.indexOf(event.target);
  const moves = {
    ArrowDown: onList ? all.indexOf(active) : at + 1,
    ArrowUp: onList ? all.indexOf(active) : at - 1,
    Home: 0,
    End: all.length - 1,
  };
  if (!(event.key in moves)) return;
  event.preventDefault();
  focusMessage(all[Math.max(0, Math.min(all.length - 1, moves[event.key]))]);
}

export function initListNav() {
  list = byId("message-list");
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.code === "KeyM" && list) {
      event.preventDefault();
      focusActiveMessage();
    } else if (event.code === "KeyC" && byId("composer-input")) {
      event.preventDefault();
      byId("composer-input").focus();
    }
  });
  if (!list) return;
  list.addEventListener("keydown", onKeydown);
  // A control of a message used by mouse or moved to by script makes it the active one.
  list.addEventListener("focusin", (event) => {
    const article = event.target.closest?.(MESSAGES);
    if (article && article !== active) {
      active = article;
      later();
    }
  });
  new MutationObserver(later).observe(list, { childList: true, subtree: true, attributeFilter: ["hidden"] });
  apply();
}
