// Times of messages, in the reader's locale and time zone: the clock time, or how long
// ago for the last hour, with the full date and time as the tooltip; and the day
// separators' labels.
import { h } from "./dom.js";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;

const valid = (date) => !Number.isNaN(date.getTime());

export function formatTime(iso) {
  const date = new Date(iso);
  return valid(date) ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

export function absoluteTime(iso) {
  const date = new Date(iso);
  return valid(date) ? date.toLocaleString([], { dateStyle: "full", timeStyle: "short" }) : "";
}

// "just now", "5 min ago" within the hour; null beyond it (the clock time says more).
function relativeTime(iso, now = Date.now()) {
  const ago = now - new Date(iso).getTime();
  if (!(ago >= -MINUTE_MS && ago < HOUR_MS)) return null;
  return ago < MINUTE_MS ? "just now" : `${Math.floor(ago / MINUTE_MS)} min ago`;
}

export function renderTime(node) {
  const iso = node.getAttribute("datetime");
  node.textContent = relativeTime(iso) ?? formatTime(iso);
  node.title = absoluteTime(iso);
}

export function timeEl(iso) {
  const node = h("time", { datetime: iso });
  renderTime(node);
  return node;
}

// The server renders times in UTC; shown again in the reader's own zone, and kept fresh.
export function localiseTimes(scope) {
  scope.querySelectorAll("time[datetime]").forEach(renderTime);
}

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

export function dayKey(iso) {
  const date = new Date(iso);
  return valid(date) ? startOfDay(date).getTime() : null;
}

export function dayLabel(iso) {
  const date = new Date(iso);
  const days = Math.round((startOfDay(new Date()) - startOfDay(date)) / (24 * HOUR_MS));
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return date.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}
