// roster.js: the room's players in the room's order, as this page knows them.
//
// Owns: the room's join order as the page knows it, which every part shows
// the players in and colors.js gives colours by (the participants list of the
// last seat answer, which the server sends in join order, docs/protocol.md
// §2; after a resume it is merged with what the page knew, so a seat that
// comes back after a server restart takes its old place, and a newcomer goes
// last); whether a player announced as joining was here already (a seat
// brought back after a restart is back, not new); why each away player is
// away ('silent': the connection is open but nothing came from it;
// 'disconnected': it ended, docs/protocol.md §11; 'unknown' for a seat that
// was away before the page came and said nothing since); and the last name seen
// for each id (chat lines and tempo changes of someone who left). Does not
// own: the room itself (jam-client.js keeps `client.room`), drawing
// (players.js) or the words said (views.js).

/**
 * How long a seat the page knew and the server's answers no longer list keeps
 * its place (and so the colours of those after it): the server's resume
 * window by default, after which such a seat is gone for good.
 */
const GHOST_MS = 30_000;

/** `known` merged with `server` (both in join order): the server's order, with the ids only `known` has kept after their predecessors. */
export function mergeOrder(known, server) {
  const out = [...server];
  let prev = null;
  for (const id of known) {
    if (out.includes(id)) {
      prev = id;
      continue;
    }
    out.splice(prev === null ? 0 : out.indexOf(prev) + 1, 0, id);
    prev = id;
  }
  return out;
}

export function createRoster({ client }) {
  /** the room this order is for */
  let roomCode = null;
  /** user ids in the room's join order, seats the page still expects back included */
  let order = [];
  /** user id -> the last name seen */
  const names = new Map();
  /** user id -> 'silent' | 'disconnected', for away seats */
  const reasons = new Map();
  /** user id -> when the room was first seen without it (a seat not back yet) */
  const missingSince = new Map();
  /** listeners of `onArrival` */
  const arrivals = new Set();
  /** listeners of `onChange`: parts that redraw when a seat the page kept a place for is given up */
  const listeners = new Set();
  let pruneTimer = null;

  function learn(participants) {
    for (const p of participants) if (p && typeof p.id === 'string') names.set(p.id, p.name);
  }

  /** Drops the ids the room has gone without for GHOST_MS; tells `onChange` listeners when any went. */
  function prune() {
    clearTimeout(pruneTimer);
    pruneTimer = null;
    const room = client.room;
    if (!room) return;
    const present = new Set(room.participants.map((p) => p.id));
    const t = Date.now();
    for (const id of order) {
      if (present.has(id)) missingSince.delete(id);
      else if (!missingSince.has(id)) missingSince.set(id, t);
    }
    const gone = (id) => missingSince.has(id) && t - missingSince.get(id) >= GHOST_MS;
    const changed = order.some(gone);
    order = order.filter((id) => !gone(id));
    for (const id of [...missingSince.keys()]) if (!order.includes(id)) missingSince.delete(id);
    if (missingSince.size) pruneTimer = setTimeout(prune, Math.min(...missingSince.values()) + GHOST_MS - t + 10);
    if (changed) for (const fn of listeners) fn();
  }

  function seated(event, data) {
    if (!data || !Array.isArray(data.participants) || typeof data.roomCode !== 'string') return;
    const ids = data.participants.map((p) => p && p.id).filter((id) => typeof id === 'string');
    learn(data.participants);
    order = event === 'session:resumed' && data.roomCode === roomCode ? mergeOrder(order, ids) : ids;
    roomCode = data.roomCode;
    for (const p of data.participants) {
      if (!p || p.status !== 'away') reasons.delete(p && p.id);
      else if (p.awayReason === 'silent' || p.awayReason === 'disconnected') reasons.set(p.id, p.awayReason);
    }
  }

  for (const event of ['session:created', 'session:joined', 'session:resumed']) {
    client.on(event, (data) => seated(event, data));
  }

  client.on('session:user-joined', (data, envelope) => {
    const user = data && data.user;
    if (!user || typeof user.id !== 'string') return;
    const known = order.includes(user.id);
    if (!known) order.push(user.id);
    names.set(user.id, user.name);
    reasons.delete(user.id);
    missingSince.delete(user.id);
    for (const fn of arrivals) fn({ user, back: known, replayed: !!(envelope && envelope.replayed) });
  });

  client.on('session:user-left', (data) => {
    if (!data) return;
    order = order.filter((id) => id !== data.userId);
    reasons.delete(data.userId);
    missingSince.delete(data.userId);
  });

  client.on('session:user-away', (data) => {
    if (!data || typeof data.userId !== 'string') return;
    // 1.2 servers say why (§11); an older one means a connection that ended.
    reasons.set(data.userId, data.reason === 'silent' ? 'silent' : 'disconnected');
  });

  client.on('session:user-back', (data) => {
    if (data) reasons.delete(data.userId);
  });

  client.on('room', (room) => {
    if (room) {
      learn(room.participants);
      prune();
    }
  });

  /** The participants of `client.room` (or `list`) in the room's order. */
  function sorted(list) {
    const rank = new Map(order.map((id, i) => [id, i]));
    return [...list].sort((a, b) => (rank.get(a.id) ?? Infinity) - (rank.get(b.id) ?? Infinity));
  }

  /** Where `id` stands in the room's join order (seats expected back count), or -1. */
  function place(id) {
    return order.indexOf(id);
  }

  /** Why participant `p` is away: 'silent', 'disconnected', 'unknown', or null when not away. */
  function awayReason(p) {
    if (!p || p.status !== 'away') return null;
    if (p.awayReason === 'silent' || p.awayReason === 'disconnected') return p.awayReason;
    // The room's snapshot says who is away, not why.
    return reasons.get(p.id) || 'unknown';
  }

  /** The last name seen for `id`, or null. */
  function nameOf(id) {
    return names.get(id) ?? null;
  }

  /** Calls `fn({ user, back, replayed })` as a player joins: `back` when the page knew the seat (a restore after a restart). */
  function onArrival(fn) {
    arrivals.add(fn);
  }

  /** Calls `fn()` when a seat the page kept a place for is given up. */
  function onChange(fn) {
    listeners.add(fn);
  }

  return { sorted, place, awayReason, nameOf, onArrival, onChange, get order() { return [...order]; } };
}
