// How each room notifies this person (their own setting, Membership.Mute): "off",
// "messages" (unread still counted but shown muted; only mentions notify) or "all"
// (mentions do not notify either). The room list holds it, as the server rendered it or
// as the API last said (li[data-mute]); read it here, change it here.
import { byId } from "./dom.js";
import { isCurrent } from "./page.js";

export const MUTE_OFF = "off";
export const MUTE_ALL = "all";

const roomItem = (roomId) => byId("room-list")?.querySelector(`li[data-room-id="${Number(roomId)}"]`);

// The room's setting; "off" for a room not (or no longer) in the list.
export function muteOf(roomId) {
  return roomItem(roomId)?.dataset.mute || MUTE_OFF;
}

export const isMuted = (roomId) => muteOf(roomId) !== MUTE_OFF;

// Show a setting: the room's row (its mark, its quiet badge) and, for the open room, the
// header's selector.
export function applyMute(roomId, mute) {
  const item = roomItem(roomId);
  if (item) {
    item.dataset.mute = mute;
    const mark = item.querySelector(".mute-mark");
    if (mark) mark.hidden = mute === MUTE_OFF;
  }
  const select = byId("room-mute");
  if (select && isCurrent(roomId)) select.value = mute;
}
