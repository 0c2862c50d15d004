// The basic stories (create, join, play, leave) with the real socket.io-client, using the
// plain Socket.IO calls (`io(url)`, `emit(name, data)`, `on(name, ...)`), against the real server.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  connected, createRoom, next, nextData, record, roomOfTwo, startServer, until, withSockets,
} from './harness.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.stop(); });

/** Ana, on piano, creates a room: her socket and the answer. */
const create = (s) => createRoom(s, srv.url);

test('create answers session:created with a room code and the creator as host', () => withSockets(async (s) => {
  const [, room] = await create(s);
  assert.match(room.roomCode, /^[0-9A-Z]{6}$/);
  assert.equal(room.hostId, room.userId);
  assert.deepEqual(room.participants.map((p) => [p.id, p.name, p.instrument]), [[room.userId, 'Ana', 'piano']]);
  assert.equal(typeof room.resumeToken, 'string');
}));

test('join answers session:joined and the others get session:user-joined', () => withSockets(async (s) => {
  // Codes typed by hand are normalised (lower case, dash).
  const typed = (code) => `${code.slice(0, 3).toLowerCase()}-${code.slice(3)}`;
  const { room, joined, arrived } = await roomOfTwo(s, srv.url, {
    join: (code) => ({ roomCode: typed(code), name: 'Ben', instrument: 'bass' }),
  });
  assert.equal(joined.roomCode, room.roomCode);
  assert.equal(joined.hostId, room.userId);
  assert.deepEqual(joined.participants.map((p) => p.name), ['Ana', 'Ben']);
  const [{ user }, meta] = arrived;
  assert.deepEqual([user.id, user.name, user.instrument], [joined.userId, 'Ben', 'bass']);
  // Reliable room messages carry their room sequence number as a second argument.
  assert.equal(meta.seq, 1);
}));

test('an unknown room answers an error event with its code and a message', () => withSockets(async (s) => {
  const c = s.connect(srv.url);
  c.emit('session:join', { roomCode: 'ZZZZZZ', name: 'Cy' });
  const err = await nextData(c, 'error');
  assert.equal(err.code, 'room_not_found');
  assert.ok(err.message.length > 0);
  // The connection stays usable.
  c.emit('session:create', { name: 'Cy' });
  assert.match((await nextData(c, 'session:created')).roomCode, /^[0-9A-Z]{6}$/);
}));

test('a broadcast reaches everyone else and never the sender', () => withSockets(async (s) => {
  const [a, room] = await create(s);
  const others = [];
  for (const name of ['Ben', 'Cy']) {
    const o = s.connect(srv.url);
    o.emit('session:join', { roomCode: room.roomCode, name });
    await nextData(o, 'session:joined');
    others.push(o);
  }
  const seenByA = record(a);
  const payload = { note: 60, velocity: 100, nested: [1, 'two', null] };
  const heard = others.map((o) => next(o, 'event:broadcast'));
  a.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'note', payload });
  for (const got of await Promise.all(heard)) {
    const [ev, meta] = got;
    assert.deepEqual(ev.payload, payload);
    assert.equal(ev.eventName, 'note');
    assert.equal(ev.senderId, room.userId);
    assert.equal(typeof ev.serverTime, 'number');
    assert.equal(typeof meta.seq, 'number');
  }
  // Ben answers; the first broadcast Ana sees must be Ben's, not her own.
  others[0].emit('event:broadcast', { roomCode: room.roomCode, eventName: 'reply', payload: 1 });
  await until(a, () => seenByA.some(([name]) => name === 'event:broadcast'));
  const broadcasts = seenByA.filter(([name]) => name === 'event:broadcast');
  assert.deepEqual(broadcasts.map(([, ev]) => ev.eventName), ['reply']);
}));

test('events from one sender arrive in the order sent', () => withSockets(async (s) => {
  const { a, b, room } = await roomOfTwo(s, srv.url);
  const got = [];
  const all = new Promise((resolve) => b.on('event:broadcast', (ev) => { got.push(ev.payload); if (got.length === 200) resolve(); }));
  for (let i = 0; i < 200; i++) a.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'n', payload: i });
  await Promise.race([all, new Promise((_, rej) => setTimeout(() => rej(new Error(`only ${got.length} of 200`)), 10_000))]);
  assert.deepEqual(got, [...Array(200).keys()]);
}));

test('a client that disconnects has left: the others get session:user-left at once', () => withSockets(async (s) => {
  const { a, b, room, joined } = await roomOfTwo(s, srv.url);
  const left = nextData(a, 'session:user-left');
  b.disconnect();
  assert.equal((await left).userId, joined.userId);
  // The name is free again.
  const c = s.connect(srv.url);
  c.emit('session:join', { roomCode: room.roomCode, name: 'Ben' });
  assert.deepEqual((await nextData(c, 'session:joined')).participants.map((p) => p.name), ['Ana', 'Ben']);
}));

test('the host leaving hands the room over: user-left, then host-changed', () => withSockets(async (s) => {
  const { a, b, room, joined } = await roomOfTwo(s, srv.url);
  const seen = record(b);
  a.emit('session:leave', { roomCode: room.roomCode });
  assert.equal((await nextData(a, 'session:left')).roomCode, room.roomCode);
  await until(b, () => seen.some(([n]) => n === 'session:host-changed'));
  const names = seen.map(([n]) => n).filter((n) => n !== 'session:latency');
  assert.deepEqual(names, ['session:user-left', 'session:host-changed']);
  assert.equal(seen.find(([n]) => n === 'session:host-changed')[1].hostId, joined.userId);
}));

test('acknowledgements get the direct answer; the events still arrive', () => withSockets(async (s) => {
  const a = s.connect(srv.url);
  const createdEvent = nextData(a, 'session:created');
  const answer = await a.timeout(5_000).emitWithAck('session:create', { name: 'Ana' });
  assert.equal(answer.event, 'session:created');
  assert.match(answer.data.roomCode, /^[0-9A-Z]{6}$/);
  assert.deepEqual(await createdEvent, answer.data);
  const { roomCode } = answer.data;

  const b = s.connect(srv.url);
  const refused = await b.timeout(5_000).emitWithAck('session:join', { roomCode: 'ZZZZZZ', name: 'Ben' });
  assert.deepEqual([refused.event, refused.data.code], ['error', 'room_not_found']);
  const joined = await b.timeout(5_000).emitWithAck('session:join', { roomCode, name: 'Ben' });
  assert.equal(joined.event, 'session:joined');

  // A broadcast has no answer: its acknowledgement comes with none once it was handled.
  const none = await b.timeout(5_000).emitWithAck('event:broadcast', { roomCode, eventName: 'n', payload: 1 });
  assert.equal(none, undefined);
  // tempo:changed is the setter's answer and carries the room sequence number.
  const tempo = await b.timeout(5_000).emitWithAck('tempo:set', { roomCode, bpm: 90 });
  assert.equal(tempo.event, 'tempo:changed');
  assert.equal(tempo.data.tempo.bpm, 90);
  assert.equal(typeof tempo.seq, 'number');
  const pong = await b.timeout(5_000).emitWithAck('clock:ping', { t0: 42 });
  assert.deepEqual([pong.event, pong.data.t0], ['clock:pong', 42]);
  const left = await b.timeout(5_000).emitWithAck('session:leave', { roomCode });
  assert.deepEqual(left, { event: 'session:left', data: { roomCode } });
}));

test('resume over Socket.IO: a lost transport leaves the seat away, session:resume takes it back', () => withSockets(async (s) => {
  const { a, b, room, joined } = await roomOfTwo(s, srv.url);
  let lastSeq = joined.seq;
  b.onAny((name, data, meta) => { if (meta?.seq) lastSeq = meta.seq; });

  // The network drops: socket.io-client reconnects by itself, as a new connection.
  const away = nextData(a, 'session:user-away');
  const reconnected = next(b, 'connect', 10_000);
  b.io.engine.close();
  assert.equal((await away).userId, joined.userId);
  a.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'missed', payload: 'while away' });
  await reconnected;
  const back = nextData(a, 'session:user-back');
  const replay = record(b);
  const resumed = await b.timeout(5_000).emitWithAck('session:resume', {
    roomCode: room.roomCode, resumeToken: joined.resumeToken, lastSeq,
  });
  assert.equal(resumed.event, 'session:resumed');
  assert.equal(resumed.data.userId, joined.userId);
  assert.equal(resumed.data.replayed, true);
  assert.equal((await back).userId, joined.userId);
  await until(b, () => replay.some(([n]) => n === 'event:broadcast'));
  const missed = replay.find(([n]) => n === 'event:broadcast');
  assert.equal(missed[1].payload, 'while away');
}));

test('ephemeral events over Socket.IO: relayed marked and without seq, never replayed after a resume', () => withSockets(async (s) => {
  const { a, b, room, joined } = await roomOfTwo(s, srv.url);
  let lastSeq = joined.seq;
  b.onAny((name, data, meta) => { if (meta?.seq) lastSeq = meta.seq; });
  const heard = next(b, 'event:broadcast');
  a.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'note', payload: { n: 1 }, ephemeral: true });
  const [note, meta] = await heard;
  assert.equal(note.ephemeral, true);
  assert.equal(meta, undefined, 'no seq for an ephemeral event');

  const away = nextData(a, 'session:user-away');
  const reconnected = next(b, 'connect', 10_000);
  b.io.engine.close();
  await away;
  a.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'note', payload: { n: 2 }, ephemeral: true });
  a.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'chat', payload: { text: 'kept' } });
  await reconnected;
  const replay = record(b);
  const resumed = await b.timeout(5_000).emitWithAck('session:resume', {
    roomCode: room.roomCode, resumeToken: joined.resumeToken, lastSeq,
  });
  assert.equal(resumed.data.replayed, true);
  await until(b, () => replay.some(([n]) => n === 'event:broadcast'));
  // A marker after the replay: everything replayed came before it.
  a.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'marker', payload: {} });
  await until(b, () => replay.some(([n, d]) => n === 'event:broadcast' && d.eventName === 'marker'));
  const names = replay.filter(([n]) => n === 'event:broadcast').map(([, d]) => d.eventName);
  assert.deepEqual(names, ['chat', 'marker'], 'the ephemeral note was not replayed');
}));

test('long-polling first, then the upgrade to WebSocket; either transport alone works too', () => withSockets(async (s) => {
  // Default options: socket.io-client opens with long-polling and upgrades.
  const a = s.connect(srv.url);
  assert.equal(a.io.engine.transport.name, 'polling');
  const upgraded = next(a.io.engine, 'upgrade');
  await connected(a);
  a.emit('session:create', { name: 'Ana' });
  const room = await nextData(a, 'session:created');
  await upgraded;
  assert.equal(a.io.engine.transport.name, 'websocket');

  const polling = s.connect(srv.url, { transports: ['polling'] });
  const ws = s.connect(srv.url, { transports: ['websocket'] });
  for (const [c, name] of [[polling, 'Pol'], [ws, 'Web']]) {
    c.emit('session:join', { roomCode: room.roomCode, name });
    await nextData(c, 'session:joined');
  }
  const heard = [next(polling, 'event:broadcast'), next(ws, 'event:broadcast')];
  a.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'note', payload: 64 });
  for (const [ev] of await Promise.all(heard)) assert.equal(ev.payload, 64);
  const toA = next(a, 'event:broadcast');
  polling.emit('event:broadcast', { roomCode: room.roomCode, eventName: 'note', payload: 65 });
  assert.equal((await toA)[0].payload, 65);
  assert.equal(polling.io.engine.transport.name, 'polling');
  assert.equal(ws.io.engine.transport.name, 'websocket');
}));

test('an event sent the moment the socket connects is never lost (30 sockets at once)', () => withSockets(async (s) => {
  // socket.io-client sends what was emitted before `connect` right after the server's
  // CONNECT packet: the server's handlers must already be in place by then.
  const answers = await Promise.all([...Array(30).keys()].map((i) => {
    const c = s.connect(srv.url, { transports: ['websocket'] });
    return c.timeout(5_000).emitWithAck('session:create', { name: `P${i}` });
  }));
  assert.deepEqual(answers.map((a) => a.event), Array(30).fill('session:created'));
}));

test('takeover: resuming a seat whose old socket still looks alive disconnects the old one', () => withSockets(async (s) => {
  const [a, room] = await create(s);
  const b = s.connect(srv.url);
  const answer = await b.timeout(5_000).emitWithAck('session:join', { roomCode: room.roomCode, name: 'Ben' });
  const old = s.connect(srv.url);
  const oldJoined = await old.timeout(5_000).emitWithAck('session:join', { roomCode: room.roomCode, name: 'Cy' });
  assert.equal(answer.event, 'session:joined');
  const gone = next(old, 'disconnect');
  const back = nextData(a, 'session:user-back');
  const fresh = s.connect(srv.url);
  const resumed = await fresh.timeout(5_000).emitWithAck('session:resume', {
    roomCode: room.roomCode, resumeToken: oldJoined.data.resumeToken,
  });
  assert.equal(resumed.event, 'session:resumed');
  assert.equal(resumed.data.userId, oldJoined.data.userId);
  // A server-side Socket.IO disconnect: socket.io-client does not reconnect by itself.
  assert.equal((await gone)[0], 'io server disconnect');
  assert.equal((await back).userId, oldJoined.data.userId);
}));
