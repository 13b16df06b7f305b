// The one WebSocket of the tab (protocol: docs/realtime.md; server side: rooms/socket/):
// exponential backoff with jitter, a ping to detect a dead socket, and the connection
// state shown at the top right of the room. What a frame means is not known here:
// main.js gives the socket its hooks (open, frame, close, ended).
import { h, byId } from "./dom.js";
import { config, FRAME } from "./page.js";

const PING_EVERY_MS = 25_000; // keeps proxies from closing an idle socket
const PONG_WITHIN_MS = 10_000; // a socket silent this long after a ping is dead
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_SESSION_ENDED = 4410;

export function setConnectionState(state, detail = "") {
  const stateEl = byId("connection-state");
  stateEl.dataset.state = state;
  const text = stateEl.querySelector(".connection-text");
  const labels = {
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    ended: "Signed out",
  };
  text.textContent = labels[state] + (detail ? ` ${detail}` : "");
  stateEl.querySelector(".connection-action")?.remove();
  if (state === "reconnecting") {
    const retry = h("button", { type: "button", class: "link connection-action" }, "Retry now");
    retry.addEventListener("click", () => retryNow());
    stateEl.append(retry);
  } else if (state === "ended") {
    const next = encodeURIComponent(location.pathname + location.search);
    stateEl.append(
      h("a", { class: "connection-action", href: `/accounts/sign-in/?next=${next}` }, "Sign in again"),
    );
  }
}

let ws = null;
let attempt = 0;
let retryTimer = null;
let pingTimer = null;
let pongTimer = null;
let ended = false;
let hooks = { open() {}, frame() {}, close() {}, ended() {} };

function url() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${config.urls.socket}`;
}

// ``given``: {open(), frame(frame), close(), ended()}; open runs once connected,
// close whenever the socket closes, ended when the session is gone for good.
export function connect(given = null) {
  if (given) hooks = { ...hooks, ...given };
  clearTimeout(retryTimer);
  retryTimer = null;
  setConnectionState(attempt ? "reconnecting" : "connecting");
  ws = new WebSocket(url());
  ws.addEventListener("open", () => {
    attempt = 0;
    setConnectionState("connected");
    hooks.open();
    pingTimer = setInterval(ping, PING_EVERY_MS);
  });
  ws.addEventListener("message", (event) => {
    clearTimeout(pongTimer); // any frame proves the socket alive
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    hooks.frame(frame);
  });
  ws.addEventListener("close", (event) => {
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    ws = null;
    hooks.close();
    if (event.code === CLOSE_UNAUTHENTICATED || event.code === CLOSE_SESSION_ENDED) {
      ended = true; // reconnecting cannot help: the session is gone
      hooks.ended();
      return;
    }
    // Anything else (1013 "try again later", 4429 flooding, a network loss) backs off.
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  if (ended || retryTimer) return;
  // "Equal jitter": half the exponential delay, plus a random half, so that a
  // server restart is not followed by every client reconnecting at one instant.
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  const delay = ceiling / 2 + Math.random() * (ceiling / 2);
  attempt += 1;
  setConnectionState("reconnecting", `(retry in ${Math.ceil(delay / 1000)} s)`);
  retryTimer = setTimeout(connect, delay);
}

function ping() {
  if (!isOpen()) return;
  send({ type: FRAME.PING });
  clearTimeout(pongTimer);
  pongTimer = setTimeout(() => ws?.close(), PONG_WITHIN_MS);
}

export function isOpen() {
  return ws !== null && ws.readyState === WebSocket.OPEN;
}

// Returns whether the frame went out (false while disconnected).
export function send(frame) {
  if (!isOpen()) return false;
  ws.send(JSON.stringify(frame));
  return true;
}

export function retryNow() {
  if (ended || isOpen()) return;
  clearTimeout(retryTimer);
  retryTimer = null;
  connect();
}
