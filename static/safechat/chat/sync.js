// Catch-up after a (re)connection or a skipped number, following the paged `sync`
// protocol (docs/realtime.md, "Reconnecting"). Owns the per-room cursors.
import { config } from "./page.js";
import * as socket from "./socket.js";
import { FRAME } from "./page.js";

const SYNC_ROOMS_PER_FRAME = 20; // the server's bound on one sync frame

// Per room, the newest message seen with none missing before it ({id, seq}): where a
// resync starts. Messages are numbered 1, 2, 3... per room (seq), so a number skipped is
// a message missed: delivered out of order by another server, or lost with a connection.
const cursors = new Map(
  Object.entries(config.cursors).map(([room, [id, seq]]) => [Number(room), { id, seq }]),
);
const newestSeen = new Map(cursors); // per room, the newest message seen at all
const resyncing = new Set(); // rooms asked again after a skipped number

// At most SYNC_ROOMS_PER_FRAME rooms a frame; "sync.done" maps the rooms with more to
// fetch to the cursor to continue from, and those are asked again. One sync frame in
// flight at a time: the next goes when "sync.done" answers the last.
const syncQueue = [];
let syncInFlight = false;

export function requestSync(roomCursors) {
  for (let i = 0; i < roomCursors.length; i += SYNC_ROOMS_PER_FRAME) {
    syncQueue.push(Object.fromEntries(roomCursors.slice(i, i + SYNC_ROOMS_PER_FRAME)));
  }
  sendNextSync();
}

function sendNextSync() {
  if (syncInFlight || !syncQueue.length) return;
  syncInFlight = socket.send({ type: FRAME.SYNC, rooms: syncQueue.shift() });
}

// A new connection starts its catch-up afresh, from the cursors, for every room known.
export function syncAll() {
  syncQueue.length = 0;
  syncInFlight = false;
  requestSync([...cursors].map(([room, c]) => [room, c.id]));
}

// "sync.done": ``more`` maps the rooms with more to fetch to the id to continue after.
export function onSyncDone(moreByRoom) {
  const more = Object.entries(moreByRoom ?? {}).map(([room, after]) => [Number(room), after]);
  const following = new Set(more.map(([room]) => room));
  // What a resync did not bring was deleted meanwhile: nothing is missing any more.
  for (const roomId of resyncing) {
    if (following.has(roomId)) continue;
    cursors.set(roomId, newestSeen.get(roomId));
    resyncing.delete(roomId);
  }
  syncInFlight = false;
  if (more.length) requestSync(more);
  else sendNextSync();
}

// Records a message of a room as seen; returns whether it is newer than all seen before.
export function noteSeen(roomId, message) {
  const seen = { id: message.id, seq: message.seq };
  const cursor = cursors.get(roomId);
  if (!cursor) {
    cursors.set(roomId, seen); // a room just granted: start here
    newestSeen.set(roomId, seen);
    return true;
  }
  const newest = newestSeen.get(roomId) ?? cursor;
  const fresh = message.id > newest.id;
  if (fresh) newestSeen.set(roomId, seen);
  if (message.seq === cursor.seq + 1) {
    cursors.set(roomId, seen);
  } else if (message.seq > cursor.seq + 1 && !resyncing.has(roomId)) {
    // Ask again from the last message held in order; the ones already here are skipped.
    resyncing.add(roomId);
    requestSync([[roomId, cursor.id]]);
  }
  return fresh;
}

// A room just granted starts at ``newest`` ({id, seq}, or none), not at the beginning.
export function startRoom(roomId, newest) {
  if (cursors.has(roomId)) return;
  const start = newest ? { id: newest.id, seq: newest.seq } : { id: 0, seq: 0 };
  cursors.set(roomId, start);
  newestSeen.set(roomId, start);
}

export function forgetRoom(roomId) {
  cursors.delete(roomId);
  newestSeen.delete(roomId);
  resyncing.delete(roomId);
}
