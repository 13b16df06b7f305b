// Small DOM helpers: text only, never markup. Every node the chat builds goes through h().

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const hidden = (text) => h("span", { class: "visually-hidden" }, text);
export const byId = (id) => document.getElementById(id);

// How a person is named in plain text (titles, notices, notifications, accessible names):
// "First Last (@username)", or "@username" with no name. A display name is free text, so it
// never stands alone. Mirrors accounts.models.person_label.
export function personLabel(name, username) {
  const shown = (name ?? "").trim();
  return shown && shown !== username ? `${shown} (@${username})` : `@${username}`;
}

// "could not save" -> "Could not save."
export function sentence(text) {
  const t = String(text || "Something went wrong").trim();
  return t.charAt(0).toUpperCase() + t.slice(1) + (t.endsWith(".") ? "" : ".");
}
