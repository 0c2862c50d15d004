// latency.js: latency in presence (docs/protocol.md §8) as plain functions.
//
// Owns: how a round trip from the server is read (a number of ms, else null),
// the expected one-way delay between two participants, and how a delay feels
// to people (gradeLatency). Does not own: the measurements (the server sends
// them; room.js keeps them in the room) or the client's own clock round trip.

/** How a one-way delay feels to people (docs/protocol.md §8): 'good', 'playable', 'hard', or null. */
export function gradeLatency(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return null;
  if (ms <= 25) return 'good';
  if (ms <= 50) return 'playable';
  return 'hard';
}

/** A round trip as the server reports it: a number of ms, else null. */
export function rttOrNull(ms) {
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : null;
}


/**
 * The expected one-way delay from participant `userId` to this client in
 * `room`, ms: (their round trip + mine) / 2 (docs/protocol.md §8), where mine
 * is the server's measurement, else `ownRttMs` (the client's own best clock
 * round trip). Null outside a room or while either is unknown.
 */
export function expectedDelayMs(room, userId, ownRttMs) {
  if (!room) return null;
  const them = room.participants.find((p) => p.id === userId);
  const me = room.participants.find((p) => p.id === room.userId);
  const theirs = them ? them.rttMs : null;
  const mine = me && me.rttMs !== null ? me.rttMs : ownRttMs;
  if (theirs === null || mine === null || mine === undefined) return null;
  return (theirs + mine) / 2;
}
