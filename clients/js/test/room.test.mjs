// room.test.mjs: the room reducer (src/room.js) on its own: server messages in,
// the new room and the events for the page out. No server, no sockets.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSeatAnswer, normalizeParticipant, reduceRoom } from '../src/room.js';

const ana = { id: 'u1', name: 'Ana', instrument: 'piano' };
const ben = { id: 'u2', name: 'Ben', instrument: 'bass', status: 'away', rttMs: 40 };

/** The room Ana holds after creating it, with Ben in it. */
function seated() {
  const { room } = reduceRoom(null, 'session:created', { roomCode: 'ABCDEF', userId: 'u1', hostId: 'u1', participants: [ana, ben] });
  return room;
}

describe('reduceRoom', () => {
  test('a seat answer makes the room, with participants normalized', () => {
    const out = reduceRoom(null, 'session:joined', { roomCode: 'ABCDEF', userId: 'u1', hostId: 'u2', participants: [ana, ben] });
    assert.equal(out.changed, true);
    assert.deepEqual(out.events, []);
    assert.deepEqual(out.room, {
      roomCode: 'ABCDEF',
      userId: 'u1',
      hostId: 'u2',
      participants: [
        { ...ana, status: 'active', awayReason: null, rttMs: null },
        { ...ben, status: 'away', awayReason: null, rttMs: 40 },
      ],
    });
  });

  test('a resumed seat also says `resumed`, with the new room', () => {
    const out = reduceRoom(seated(), 'session:resumed', { roomCode: 'ABCDEF', userId: 'u1', hostId: 'u1', participants: [ana], replayed: true });
    assert.deepEqual(out.events, [['resumed', { replayed: true, room: out.room }]]);
    assert.equal(out.room.participants.length, 1);
  });

  test('a seat answer without room code or user id changes nothing', () => {
    assert.equal(isSeatAnswer('session:created', { roomCode: 'ABCDEF' }), false);
    const out = reduceRoom(null, 'session:created', { roomCode: 'ABCDEF' });
    assert.deepEqual(out, { room: null, changed: false, events: [] });
  });

  test('joins add at the end (or replace the same id), leaves remove', () => {
    const room = seated();
    const cleo = { id: 'u3', name: 'Cleo', instrument: '' };
    const joined = reduceRoom(room, 'session:user-joined', { user: cleo }).room;
    assert.deepEqual(joined.participants.map((p) => p.id), ['u1', 'u2', 'u3']);
    const again = reduceRoom(joined, 'session:user-joined', { user: { ...ben, name: 'Benji' } }).room;
    assert.deepEqual(again.participants.map((p) => p.name), ['Ana', 'Benji', 'Cleo']);
    const left = reduceRoom(again, 'session:user-left', { userId: 'u2' });
    assert.equal(left.changed, true);
    assert.deepEqual(left.room.participants.map((p) => p.id), ['u1', 'u3']);
    assert.equal(reduceRoom(room, 'session:user-joined', { user: { name: 'no id' } }).changed, false);
  });

  test('away and back set the status and say who', () => {
    const room = seated();
    const away = reduceRoom(room, 'session:user-away', { userId: 'u1' });
    assert.equal(away.room.participants[0].status, 'away');
    // A server that says no reason (1.1) is away only when disconnected.
    assert.equal(away.room.participants[0].awayReason, 'disconnected');
    assert.deepEqual(away.events, [['user-away', { userId: 'u1', user: away.room.participants[0], reason: 'disconnected' }]]);
    const silent = reduceRoom(room, 'session:user-away', { userId: 'u1', reason: 'silent' });
    assert.equal(silent.room.participants[0].awayReason, 'silent');
    assert.equal(silent.events[0][1].reason, 'silent');
    const back = reduceRoom(silent.room, 'session:user-back', { userId: 'u1' });
    assert.equal(back.room.participants[0].status, 'active');
    assert.equal(back.room.participants[0].awayReason, null);
    assert.equal(back.events[0][0], 'user-back');
    // Outside a room the page still hears of it, with no user.
    assert.deepEqual(reduceRoom(null, 'session:user-back', { userId: 'u9' }), {
      room: null,
      changed: false,
      events: [['user-back', { userId: 'u9', user: null }]],
    });
  });

  test('the host changes', () => {
    const out = reduceRoom(seated(), 'session:host-changed', { hostId: 'u2' });
    assert.equal(out.room.hostId, 'u2');
    assert.equal(out.changed, true);
  });

  test('latency updates the round trips in the map; those left out keep theirs', () => {
    const out = reduceRoom(seated(), 'session:latency', { rttMs: { u1: 12, x: 3 } });
    assert.deepEqual(out.room.participants.map((p) => p.rttMs), [12, 40]);
    assert.deepEqual(out.events, [['latency', { rttMs: { u1: 12, x: 3 }, room: out.room }]]);
    const bad = reduceRoom(out.room, 'session:latency', { rttMs: { u1: -1, u2: 'fast' } });
    assert.deepEqual(bad.room.participants.map((p) => p.rttMs), [null, null]);
    assert.equal(reduceRoom(seated(), 'session:latency', {}).changed, false);
  });

  test('leaving empties the room; out of a room, room messages change nothing', () => {
    assert.deepEqual(reduceRoom(seated(), 'session:left', { roomCode: 'ABCDEF' }), { room: null, changed: true, events: [] });
    for (const event of ['session:left', 'session:user-joined', 'session:user-left', 'session:host-changed', 'session:latency']) {
      assert.equal(reduceRoom(null, event, { user: ana, userId: 'u1', hostId: 'u1', rttMs: {} }).changed, false, event);
    }
  });

  test('the room passed in is never modified; other messages leave it as it is', () => {
    const room = seated();
    const copy = structuredClone(room);
    for (const [event, data] of [
      ['session:user-joined', { user: { id: 'u3', name: 'Cleo' } }],
      ['session:user-left', { userId: 'u2' }],
      ['session:user-away', { userId: 'u1' }],
      ['session:host-changed', { hostId: 'u2' }],
      ['session:latency', { rttMs: { u1: 5 } }],
      ['session:left', {}],
    ]) {
      reduceRoom(room, event, data);
    }
    assert.deepEqual(room, copy);
    const other = reduceRoom(room, 'event:broadcast', { eventName: 'note' });
    assert.equal(other.room, room);
    assert.equal(other.changed, false);
  });

  test('normalizeParticipant fills status and round trip', () => {
    assert.deepEqual(normalizeParticipant({ id: 'a', status: 'weird', rttMs: Infinity }), { id: 'a', status: 'active', awayReason: null, rttMs: null });
  });
});
