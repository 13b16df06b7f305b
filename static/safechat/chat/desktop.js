// Desktop notifications (the browser's Notification API) for mentions and direct
// messages. Opt-in: the browser's permission is asked only when the person ticks the box,
// and the choice is remembered in this browser (localStorage, per user). A bank's screens
// are seen by others: a notification says who and where ("New mention in #Rates from Alice
// Martin"), never the message's text, unless "Show message text" is ticked too. A muted
// room (mute.js) notifies only mentions, and with "mute all" nothing.
import { byId, personLabel } from "./dom.js";
import { MUTE_ALL, MUTE_OFF, muteOf } from "./mute.js";
import { config, isCurrent, me } from "./page.js";

const ENABLED = `safechat.notify.${me.id}`;
const WITH_TEXT = `safechat.notify-text.${me.id}`;
const TEXT_AT_MOST = 200;
const notified = new Set(); // message ids: a message synced again is not notified twice

const supported = () => "Notification" in window;

function stored(key) {
  try {
    return window.localStorage.getItem(key) === "on";
  } catch {
    return false; // storage refused (a private window's policy): nothing is remembered
  }
}

function store(key, on) {
  try {
    if (on) window.localStorage.setItem(key, "on");
    else window.localStorage.removeItem(key);
  } catch {
    // Not remembered; this page still follows the box.
  }
}

const enabled = () => supported() && stored(ENABLED) && Notification.permission === "granted";

function say(text) {
  const status = byId("notify-status");
  if (status) status.textContent = text;
}

function showState() {
  const box = byId("notify-toggle");
  const text = byId("notify-text");
  if (!box) return;
  if (!supported()) {
    box.disabled = text.disabled = true;
    say("This browser cannot show desktop notifications.");
    return;
  }
  box.checked = enabled();
  text.checked = stored(WITH_TEXT);
  text.disabled = !box.checked;
  if (stored(ENABLED) && Notification.permission === "denied") {
    say("Notifications are blocked in this browser's settings for this site.");
  }
}

async function onToggle(box) {
  if (!box.checked) {
    store(ENABLED, false);
    say("Desktop notifications are off.");
    showState();
    return;
  }
  // Asked here, on the person's click, never on page load.
  let permission = Notification.permission;
  if (permission === "default") permission = await Notification.requestPermission();
  if (permission === "granted") {
    store(ENABLED, true);
    say("Desktop notifications are on for mentions and direct messages.");
  } else {
    store(ENABLED, false);
    say("The browser did not allow notifications: allow them in its site settings, then try again.");
  }
  showState();
}

export function initDesktopNotifications() {
  const box = byId("notify-toggle");
  if (!box) return;
  box.addEventListener("change", () => onToggle(box));
  byId("notify-text").addEventListener("change", (event) => store(WITH_TEXT, event.target.checked));
  showState();
}

function roomOf(roomId) {
  const item = byId("room-list")?.querySelector(`li[data-room-id="${Number(roomId)}"]`);
  return {
    name: item?.dataset.label ?? "a room", // the row's label (rooms.js), qualified if need be
    direct: item?.dataset.kind === "direct",
  };
}

// The text as shown (its rendering's text, never its Markdown), parsed inert.
function shownText(message) {
  if (!message.html) return "";
  const doc = new DOMParser().parseFromString(message.html, "text/html");
  return doc.body.textContent.replace(/\s+/g, " ").trim().slice(0, TEXT_AT_MOST);
}

// A message that arrived (message.new): notified if it mentions the reader or is in a
// direct conversation, unless they are looking at that room right now. In a muted room
// only a mention notifies; with "mute all" nothing does.
export function notifyMessage(roomId, message) {
  if (!enabled() || message.sender_id === me.id || notified.has(message.id)) return;
  const room = roomOf(roomId);
  const mentioned = (message.mentions ?? []).includes(me.id);
  const mute = muteOf(roomId);
  if (mute === MUTE_ALL) return;
  if (!mentioned && (!room.direct || mute !== MUTE_OFF)) return;
  if (isCurrent(roomId) && document.visibilityState === "visible" && document.hasFocus()) return;
  notified.add(message.id);
  const from = personLabel(message.sender_name, message.sender);
  // A one-to-one conversation is named after its other person: saying it twice adds nothing.
  const where = room.direct && room.name === from ? "" : ` in ${room.direct ? "@" : "#"}${room.name}`;
  const title = mentioned ? `New mention${where} from ${from}` : `New direct message from ${from}`;
  const options = { tag: `safechat-message-${Number(message.id)}` };
  if (stored(WITH_TEXT)) options.body = shownText(message);
  const shown = new Notification(title, options);
  shown.onclick = () => {
    window.focus();
    window.location.assign(`${config.urls.portal}?room=${Number(roomId)}#message-${Number(message.id)}`);
    shown.close();
  };
}
