// Times of messages, in the reader's locale and time zone.
import { h } from "./dom.js";

export function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? ""
    : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function timeEl(iso) {
  const node = h("time", { datetime: iso }, formatTime(iso));
  node.title = new Date(iso).toLocaleString();
  return node;
}

// The server renders times in UTC; shown again in the reader's own zone.
export function localiseTimes(scope) {
  scope.querySelectorAll("time[datetime]").forEach((node) => {
    node.textContent = formatTime(node.getAttribute("datetime"));
    node.title = new Date(node.getAttribute("datetime")).toLocaleString();
  });
}
