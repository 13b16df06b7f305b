// The session's time limits: warned a minute ahead, with a way to stay (WCAG 2.2.1).
import { byId } from "./dom.js";
import { FRAME } from "./page.js";
import * as socket from "./socket.js";

const endedReasons = {
  idle: "after a period of inactivity",
  absolute: "(the session reached its maximum length)",
  credentials_changed: "(the password or second factors changed)",
  deactivated: "(the account was deactivated)",
};
let endedReason = "";
let countdown = null;

// "session.ended" comes just before the socket closes: remember why, for the state line.
export function noteEnded(reason) {
  endedReason = reason;
}

export function endedDetail() {
  return endedReasons[endedReason] ?? "";
}

export function initSession() {
  byId("session-expiry-stay")?.addEventListener("click", () => {
    socket.send({ type: FRAME.SESSION_EXTEND });
  });
}

export function showExpiry({ reason, seconds, extendable }) {
  const box = byId("session-expiry");
  if (!box) return;
  const text = byId("session-expiry-text");
  const stay = byId("session-expiry-stay");
  let left = seconds;
  const render = () => {
    text.textContent =
      reason === "idle"
        ? `You will be signed out in ${left} s because of inactivity.`
        : `Your session ends in ${left} s (its maximum length). Save your work; you will need to sign in again.`;
  };
  render();
  clearInterval(countdown);
  countdown = setInterval(() => {
    left = Math.max(0, left - 1);
    render();
  }, 1000);
  stay.hidden = !extendable;
  box.hidden = false;
  (extendable ? stay : text).focus();
}

export function hideExpiry() {
  clearInterval(countdown);
  const box = byId("session-expiry");
  if (box) box.hidden = true;
}
