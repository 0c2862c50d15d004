// room.js: the room as the client sees it, kept by a pure reducer.
//
// Owns: the room state (`{ roomCode, userId, hostId, participants }`, each
// participant `{ id, name, instrument, status, awayReason, rttMs }` in join
// order) and how
// each server message changes it, with the events that change means for the
// page ('room', 'user-away', 'user-back', 'latency', 'resumed'). A function of
// (room, message) to (new room, events): no sockets, timers or storage, so it
// is tested on its own (test/room.test.mjs). Does not own: the seat and its
// resume token, the sequence numbers, the tempo or the clock (client.js keeps
// them beside the room), nor emitting the events.

import { rttOrNull } from './latency.js';

/** Why a seat is away: 'silent' (its connection is open, nothing came for 3 s) or 'disconnected'. */
export function awayReasonOf(reason) {
  return reason === 'silent' ? 'silent' : 'disconnected';
}

/**
 * A participant as the page sees it: `status` is always 'active' or 'away',
 * `awayReason` 'silent', 'disconnected', or null (active, or away for a reason
 * the snapshot does not say), `rttMs` a number or null.
 */
export function normalizeParticipant(p) {
  const status = p && p.status === 'away' ? 'away' : 'active';
  const awayReason = status === 'away' && p.awayReason ? awayReasonOf(p.awayReason) : null;
  return { ...p, status, awayReason, rttMs: rttOrNull(p && p.rttMs) };
}

/** Answers that seat this client in a room (`session:created`, `joined`, `resumed`). */
export const SEAT_EVENTS = Object.freeze(['session:created', 'session:joined', 'session:resumed']);

/** Whether `data` is a seat answer the client can take: it names the room and this client. */
export function isSeatAnswer(event, data) {
  return SEAT_EVENTS.includes(event) && typeof data.roomCode === 'string' && typeof data.userId === 'string';
}

/** The room a seat answer describes. */
function roomOfSeatAnswer(data) {
  const participants = Array.isArray(data.participants) ? data.participants.map(normalizeParticipant) : [];
  return { roomCode: data.roomCode, userId: data.userId, hostId: data.hostId, participants };
}

/**
 * The room after server message `event` with `data` (an object), from `room`
 * (null: not in a room). Returns `{ room, changed, events }`: `changed` tells
 * whether the page hears 'room'; `events` are the further `[name, data]` pairs
 * to say after it, in order. `room` is a new object whenever it changed; the
 * one passed in is never modified.
 */
export function reduceRoom(room, event, data) {
  const same = { room, changed: false, events: [] };
  const next = (participants, extra = {}) => ({ ...room, ...extra, participants });
  switch (event) {
    case 'session:created':
    case 'session:joined':
    case 'session:resumed': {
      if (!isSeatAnswer(event, data)) return same;
      const seated = roomOfSeatAnswer(data);
      const events = event === 'session:resumed' ? [['resumed', { replayed: data.replayed === true, room: seated }]] : [];
      return { room: seated, changed: true, events };
    }
    case 'session:left':
      return room ? { room: null, changed: true, events: [] } : same;
    case 'session:user-joined': {
      if (!room || !data.user || typeof data.user.id !== 'string') return same;
      const user = normalizeParticipant(data.user);
      const i = room.participants.findIndex((p) => p.id === user.id);
      const participants = i < 0 ? [...room.participants, user] : room.participants.map((p, j) => (j === i ? user : p));
      return { room: next(participants), changed: true, events: [] };
    }
    case 'session:user-left':
      if (!room) return same;
      return { room: next(room.participants.filter((p) => p.id !== data.userId)), changed: true, events: [] };
    case 'session:user-away':
    case 'session:user-back': {
      const away = event === 'session:user-away';
      const status = away ? 'away' : 'active';
      // A 1.1 server says no reason: its seats are away only when disconnected.
      const awayReason = away ? awayReasonOf(data.reason) : null;
      const after = room ? next(room.participants.map((p) => (p.id === data.userId ? { ...p, status, awayReason } : p))) : null;
      const user = after && after.participants.find((p) => p.id === data.userId);
      const said = away
        ? ['user-away', { userId: data.userId, user: user || null, reason: awayReason }]
        : ['user-back', { userId: data.userId, user: user || null }];
      return { room: after, changed: after !== null, events: [said] };
    }
    case 'session:host-changed':
      if (!room) return same;
      return { room: next(room.participants, { hostId: data.hostId }), changed: true, events: [] };
    case 'session:latency': {
      const rtts = data.rttMs;
      if (!room || !rtts || typeof rtts !== 'object') return same;
      const has = (id) => Object.prototype.hasOwnProperty.call(rtts, id);
      // Away seats are left out of the map: they keep their last value.
      const after = next(room.participants.map((p) => (has(p.id) ? { ...p, rttMs: rttOrNull(rtts[p.id]) } : p)));
      return { room: after, changed: true, events: [['latency', { rttMs: { ...rtts }, room: after }]] };
    }
    default:
      return same;
  }
}
