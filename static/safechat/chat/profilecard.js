// The small profile card: a sender's name on a message is a button that opens it, a
// non-modal dialog under the message's header with the person's name, @username, their
// presence and role here, and "Message" (a direct conversation) when one may start one.
// Esc or Close shuts it and gives the focus back to the name; so does a click elsewhere.
import { h, hidden } from "./dom.js";
import { config, csrfToken, me } from "./page.js";
import { memberOf, presenceOf } from "./people.js";

let open = null; // { card, trigger }

const PRESENCE_WORDS = { online: "Online", away: "Away", offline: "Offline", unknown: "Presence unknown" };

export function closeCard({ refocus = false } = {}) {
  if (!open) return;
  const { card, trigger } = open;
  open = null;
  card.remove();
  trigger.setAttribute("aria-expanded", "false");
  if (refocus && trigger.isConnected) trigger.focus();
}

function messageForm(userId, name) {
  // The directory's own form (rooms.views.conversation_new): a conversation with them.
  return h(
    "form",
    { method: "post", action: config.urls.conversation_new, class: "inline" },
    h("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrfToken }),
    h("input", { type: "hidden", name: "participants", value: String(userId) }),
    h("button", { type: "submit", name: "do", value: "start", class: "secondary small" }, "Message", hidden(` ${name}`)),
  );
}

// ``trigger``: a message's sender button (inside the message's header).
export function openCard(trigger) {
  if (open?.trigger === trigger) {
    closeCard({ refocus: true });
    return;
  }
  closeCard();
  const item = trigger.closest(".message-item");
  const article = trigger.closest("article");
  const userId = Number(item?.dataset.senderId);
  const member = memberOf(userId);
  const name = member?.name || trigger.textContent.trim();
  const username = member?.username || article.querySelector(".msg-username bdi")?.textContent || "";
  const headingId = `profile-card-${item.dataset.messageId || item.dataset.clientId}`;
  const close = h("button", { type: "button", class: "link profile-card-close" }, "Close", hidden(` the profile of ${name}`));
  const role = member ? (config.room?.role_labels?.[member.role] ?? member.role) : null;
  const card = h(
    "div",
    { class: "profile-card", role: "dialog", "aria-labelledby": headingId },
    h("p", { class: "profile-card-name", id: headingId }, h("bdi", {}, name)),
    h("p", { class: "profile-card-username" }, "@", h("bdi", {}, username)),
    member
      ? h("p", { class: "profile-card-detail" }, `${PRESENCE_WORDS[presenceOf(userId)] ?? ""} · ${role} in this room`)
      : h("p", { class: "profile-card-detail" }, "No longer a member of this room"),
    h(
      "div",
      { class: "profile-card-actions" },
      userId !== me.id && config.may_message ? messageForm(userId, name) : null,
      close,
    ),
  );
  article.querySelector(".msg-meta").after(card);
  open = { card, trigger };
  trigger.setAttribute("aria-expanded", "true");
  close.addEventListener("click", () => closeCard({ refocus: true }));
  card.addEventListener("click", (event) => event.stopPropagation()); // not the list's
  card.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeCard({ refocus: true });
    }
  });
  card.addEventListener("focusout", (event) => {
    const to = event.relatedTarget;
    if (to && !card.contains(to) && to !== trigger) closeCard();
  });
  (card.querySelector("form button") ?? close).focus();
}

export function initProfileCards() {
  document.addEventListener("mousedown", (event) => {
    if (open && !open.card.contains(event.target) && !open.trigger.contains(event.target)) closeCard();
  });
}
