// What the server put in the page for this script: the configuration (a json_script
// block, data rather than code, so the CSP allows it), the socket's names and the user.
// Read once; every other module reads it from here.
import { byId } from "./dom.js";

export const config = JSON.parse(byId("chat-config").textContent);

// The socket's names, from the page (safechat/events.py): EVENT.MESSAGE_NEW is
// "message.new", FRAME.PING is "ping". Never typed here again; a name the server does
// not know is an error at once, not a handler that silently never runs.
const socketNames = JSON.parse(byId("socket-names").textContent);
const known = (table) =>
  new Proxy(Object.freeze({ ...table }), {
    get(target, name) {
      if (!(name in target)) throw new Error(`unknown socket name ${String(name)}`);
      return target[name];
    },
  });
export const EVENT = known(socketNames.events);
export const FRAME = known(socketNames.frames);
// What a member.updated event says changed: MEMBER_CHANGE.ROLE, MEMBER_CHANGE.NAME.
export const MEMBER_CHANGE = known(socketNames.member_changes);

export const me = config.user;
export const current = config.room; // null when the user is in no room
export const csrfToken = byId("chat").dataset.csrf;
export const isCurrent = (roomId) => current !== null && Number(roomId) === current.id;
