// client.test.mjs: jam-client.js (clients/js/) logic in Node, against a scripted fake
// server (no browser, no real server): request ids, transport choice,
// reconnecting with backoff, rejoin retries and the end of a session against a
// protocol 1.0 server; and against a 1.1 server (features resume and clock):
// the room sequence, resuming the seat, the fallback join, away/back, the
// heartbeat, the stored seat, and a seat taken over elsewhere. The browser
// tests (jam.test.mjs, resume.test.mjs) cover the real transports.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { JamClient, JamError, describeError, hexToBytes } from '../../clients/js/jam-client.js';
import { ERROR_TEXT } from '../messages.js';
import { BASE, CONNECT_INFO, FakeServer } from './fake-server.mjs';

function participant(id, name, instrument = 'piano') {
  return { id, name, instrument };
}

/** A participant as the client lists it (protocol 1.0 servers send no status and no round trip; an active seat has no away reason). */
function listed(id, name, instrument = 'piano', status = 'active', rttMs = null, awayReason = null) {
  return { id, name, instrument, status, awayReason, rttMs };
}

/** Resolves with the first `name` event's arguments, or rejects after `ms`. */
function nextEvent(client, name, ms = 2000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} event within ${ms} ms`)), ms);
    client.once(name, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

function newClient(options = {}) {
  return new JamClient({ baseUrl: BASE, reconnectBaseMs: 5, reconnectMaxMs: 40, storage: null, ...options });
}

describe('jam-client.js with a protocol 1.0 server', { timeout: 20_000 }, () => {
  let server;
  let client;

  beforeEach(() => {
    server = new FakeServer();
    server.install();
    // A well-behaved room: create and join answer; everyone else is imaginary.
    let users = 0;
    server.onMessage = (env, ws) => {
      const { event, data, id } = env;
      if (event === 'session:create' || event === 'session:join') {
        const userId = `u${++users}`;
        const roomCode = event === 'session:create' ? 'K7F3QX' : String(data.roomCode).toUpperCase();
        ws.push(event === 'session:create' ? 'session:created' : 'session:joined', {
          roomCode,
          userId,
          hostId: 'u1',
          participants: [participant(userId, data.name.trim(), data.instrument)],
        }, id);
      } else if (event === 'session:leave') {
        ws.push('session:left', { roomCode: data.roomCode }, id);
      }
    };
  });

  afterEach(() => {
    client?.close();
    server.restore();
  });

  test('requests resolve with the answer carrying their id', async () => {
    client = newClient();
    assert.equal(await client.connect(), 'websocket');
    assert.equal(client.transport, 'websocket');
    const room = await client.create({ name: ' Ana ', instrument: 'piano' });
    assert.equal(room.roomCode, 'K7F3QX');
    assert.deepEqual(client.room.participants, [listed('u1', 'Ana', 'piano')]);
    const sent = server.received[0];
    assert.equal(sent.event, 'session:create');
    assert.equal(typeof sent.id, 'number');
    assert.deepEqual(sent.data, { name: ' Ana ', instrument: 'piano' });
    assert.equal(client.stats.websocketSent, 1);
    assert.equal(server.pings.length, 0, 'no heartbeat and no clock pings without the clock feature');
  });

  test('an error answer rejects the request with its code, and is also an event', async () => {
    server.onMessage = (env, ws) => ws.push('error', { code: 'room_not_found', message: 'no such room' }, env.id);
    client = newClient();
    await client.connect();
    const seen = nextEvent(client, 'error');
    await assert.rejects(client.join({ roomCode: 'NOPE00', name: 'Ana' }), (err) => {
      assert.ok(err instanceof JamError);
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'room_not_found');
      return true;
    });
    const [data, env] = await seen;
    assert.equal(data.code, 'room_not_found');
    assert.equal(typeof env.id, 'number');
    assert.equal(client.room, null);
    assert.match(describeError('name_taken', ERROR_TEXT), /already uses that name/);
  });

  test('server messages become events and keep the room current', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana', instrument: 'piano' });
    const ws = server.last;
    const joined = nextEvent(client, 'session:user-joined');
    ws.push('session:user-joined', { user: participant('u9', 'Ben', 'bass') });
    await joined;
    assert.deepEqual(client.room.participants.map((p) => p.name), ['Ana', 'Ben']);

    const note = nextEvent(client, 'event:broadcast');
    ws.push('event:broadcast', { eventName: 'note', payload: { type: 'on', note: 60 }, senderId: 'u9' });
    const [data, , channel] = await note;
    assert.deepEqual(data.payload, { type: 'on', note: 60 });
    assert.equal(channel, 'websocket');
    assert.equal(client.stats.broadcastsReceived, 1);

    const left = nextEvent(client, 'session:user-left');
    ws.push('session:user-left', { userId: 'u1' });
    ws.push('session:host-changed', { hostId: 'u9' });
    await left;
    await nextEvent(client, 'session:host-changed');
    assert.equal(client.room.hostId, 'u9');
  });

  test('broadcast over WebSocket carries the room code and the payload', async () => {
    client = newClient();
    await client.connect();
    assert.equal(client.broadcast('note', { type: 'on', note: 60 }), null, 'nothing to send outside a room');
    await client.create({ name: 'Ana' });
    assert.equal(client.broadcast('note', { type: 'on', note: 60, velocity: 90, instrument: 'piano' }), 'websocket');
    assert.deepEqual(server.received.at(-1), {
      event: 'event:broadcast',
      data: { roomCode: 'K7F3QX', eventName: 'note', payload: { type: 'on', note: 60, velocity: 90, instrument: 'piano' } },
    });
    assert.equal(client.stats.broadcastsSent, 1);
    assert.equal(client.stats.datagramsSent, 0);
  });

  test('a lost connection reconnects, re-fetches /connect and rejoins with the same name', async () => {
    client = newClient();
    await client.connect();
    await client.join({ roomCode: 'abc123', name: 'Ana', instrument: 'bass' });
    const events = [];
    for (const name of ['reconnecting', 'reconnected', 'session-ended', 'state']) client.on(name, (d) => events.push([name, d.state ?? '']));

    const reconnected = nextEvent(client, 'reconnected');
    server.last.die();
    const [{ room, transport }] = await reconnected;
    assert.equal(transport, 'websocket');
    assert.equal(room.roomCode, 'ABC123');
    assert.equal(server.fetches, 2);
    const rejoin = server.received.at(-1);
    assert.equal(rejoin.event, 'session:join');
    assert.deepEqual(rejoin.data, { roomCode: 'ABC123', name: 'Ana', instrument: 'bass' });
    assert.equal(client.stats.rejoins, 1);
    assert.equal(client.stats.reconnects, 1);
    assert.deepEqual(events.map((e) => e.join(':')), ['state:reconnecting', 'reconnecting:', 'state:connected', 'reconnected:']);
  });

  test('requests in flight when the connection dies reject with code "disconnected"', async () => {
    server.onMessage = () => {}; // never answers
    client = newClient({ reconnect: false });
    await client.connect();
    const pending = client.create({ name: 'Ana' });
    server.last.die();
    await assert.rejects(pending, (err) => err.code === 'disconnected');
    assert.equal(client.state, 'disconnected');
  });

  test('while the server is down it keeps trying, with capped backoff and jitter', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const delays = [];
    client.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    server.up = false;
    server.last.die();
    // Room gone after the "restart": the rejoin is refused.
    await new Promise((resolve) => {
      const off = client.on('reconnecting', () => {
        if (delays.length >= 6) {
          off();
          resolve();
        }
      });
    });
    server.onMessage = (env, ws) => ws.push('error', { code: 'room_not_found', message: 'gone' }, env.id);
    const ended = nextEvent(client, 'session-ended');
    server.up = true;
    const [info] = await ended;
    assert.equal(info.code, 'room_not_found');
    assert.equal(info.roomCode, 'K7F3QX');
    await nextEvent(client, 'reconnected');
    assert.equal(client.state, 'connected');
    assert.equal(client.room, null);
    assert.equal(client.rejoinTarget, null);
    assert.ok(delays.every((d) => d <= 40), `capped: ${delays}`);
    assert.ok(delays[0] >= 2 && delays[0] <= 5, `first delay ${delays[0]}`);
    assert.ok(delays.at(-1) >= 20, `grew to the cap: ${delays}`);
  });

  test('a rejoin answered name_taken is tried again, then gives up with session-ended', async () => {
    client = newClient({ rejoinNameTakenRetries: 3 });
    await client.connect();
    await client.create({ name: 'Ana' });
    let joins = 0;
    server.onMessage = (env, ws) => {
      joins++;
      if (joins <= 2) ws.push('error', { code: 'name_taken', message: 'taken' }, env.id);
      else ws.push('session:joined', { roomCode: 'K7F3QX', userId: 'u7', hostId: 'u2', participants: [participant('u2', 'Ben'), participant('u7', 'Ana')] }, env.id);
    };
    const retries = [];
    client.on('rejoin-retry', ({ attempt, code }) => retries.push([attempt, code]));
    const reconnected = nextEvent(client, 'reconnected');
    server.last.die();
    await reconnected;
    assert.equal(joins, 3);
    assert.deepEqual(retries, [[1, 'name_taken'], [2, 'name_taken']]);
    assert.equal(client.room.userId, 'u7');

    // Always taken: after the retries the page hears the session is over for us.
    server.onMessage = (env, ws) => {
      joins++;
      ws.push('error', { code: 'name_taken', message: 'taken' }, env.id);
    };
    joins = 0;
    const ended = nextEvent(client, 'session-ended');
    server.last.die();
    const [info] = await ended;
    assert.equal(info.code, 'name_taken');
    assert.equal(joins, 4, 'first try and three retries');
  });

  test('the drop-transport test hook looks like a network fault to the client', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const reconnected = nextEvent(client, 'reconnected');
    client[Symbol.for('jam-client.dropTransport')]();
    await reconnected;
    assert.equal(server.sockets.length, 2);
    assert.equal(client.room.roomCode, 'K7F3QX');
  });

  test('close() stops for good: no reconnect', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const disconnected = nextEvent(client, 'disconnected');
    client.close();
    await disconnected;
    await new Promise((r) => setTimeout(r, 60)); // longer than the whole backoff cap
    assert.equal(server.sockets.length, 1);
    assert.equal(client.state, 'disconnected');
    await assert.rejects(client.create({ name: 'Ana' }), (err) => err.code === 'not_connected');
  });

  test('WebTransport that does not open in time falls back to WebSocket', async () => {
    server.connectInfo = {
      ...CONNECT_INFO,
      webtransport: { url: 'https://jam.test:4433/jam', certificateHashes: [{ algorithm: 'sha-256', value: 'ab'.repeat(32) }] },
    };
    let options;
    globalThis.WebTransport = class {
      constructor(url, opts) {
        options = opts;
        this.ready = new Promise(() => {});
        this.closed = new Promise(() => {});
      }

      close() {}
    };
    client = newClient({ webTransportTimeoutMs: 50 });
    const failed = nextEvent(client, 'transport-failed');
    assert.equal(await client.connect(), 'websocket');
    const [{ transport, error }] = await failed;
    assert.equal(transport, 'webtransport');
    assert.equal(error.code, 'timeout');
    assert.ok(options.serverCertificateHashes[0].value instanceof Uint8Array);
    assert.equal(options.serverCertificateHashes[0].value.length, 32);
    assert.equal(options.serverCertificateHashes[0].value[0], 0xab);
  });

  test('a forced transport is the only one tried', async () => {
    client = newClient({ transport: 'webtransport' });
    await assert.rejects(client.connect(), (err) => err.code === 'connect_failed');
    assert.equal(server.sockets.length, 0);
    assert.equal(client.state, 'disconnected');
    assert.throws(() => newClient({ transport: 'carrier-pigeon' }), TypeError);
  });

  test('hexToBytes', () => {
    assert.deepEqual([...hexToBytes('00ff7F')], [0, 255, 127]);
    assert.throws(() => hexToBytes('xyz'));
  });
});

/** A storage like sessionStorage, in memory. */
class MemoryStorage {
  constructor() {
    this.map = new Map();
  }

  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }

  setItem(key, value) {
    this.map.set(key, String(value));
  }

  removeItem(key) {
    this.map.delete(key);
  }
}

describe('jam-client.js with a 1.1 server (resume, clock)', { timeout: 20_000 }, () => {
  let server;
  let client;
  let others = [];
  let room;

  /** Waits for `pred` to hold, checking every few ms, for at most `ms`. */
  async function until(pred, what, ms = 2000) {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  beforeEach(() => {
    server = new FakeServer();
    server.install();
    server.connectInfo = { ...CONNECT_INFO, features: ['resume', 'clock'] };
    server.answerPings = true;
    server.onResume = null; // (env, ws) => true when it answered
    room = { code: 'K7F3QX', seq: 0, tokens: 0, users: 0 };
    server.onMessage = (env, ws) => {
      const { event, data, id } = env;
      const token = () => `t${++room.tokens}`;
      if (event === 'clock:ping') {
        if (server.answerPings) ws.push('clock:pong', { t0: data.t0, serverTime: 1000 }, id);
      } else if (event === 'session:create' || event === 'session:join') {
        const userId = `u${++room.users}`;
        ws.push(event === 'session:create' ? 'session:created' : 'session:joined', {
          roomCode: room.code,
          userId,
          hostId: 'u1',
          participants: [{ ...participant(userId, data.name, data.instrument), status: 'active' }],
          resumeToken: token(),
          seq: room.seq,
        }, id);
      } else if (event === 'session:resume') {
        if (server.onResume && server.onResume(env, ws)) return;
        ws.push('session:resumed', {
          roomCode: room.code,
          userId: 'u1',
          hostId: 'u1',
          participants: [{ ...participant('u1', 'Ana'), status: 'active' }],
          resumeToken: token(),
          seq: room.seq,
          replayed: false,
        }, id);
      } else if (event === 'session:leave') {
        ws.push('session:left', { roomCode: data.roomCode }, id);
      }
    };
  });

  afterEach(() => {
    client?.close();
    for (const c of others) c.close();
    others = [];
    server.restore();
  });

  /** The server sends a reliable room message: the next `seq` (or the one given). */
  function roomMessage(ws, event, data, seq = ++room.seq) {
    ws.push(event, data, undefined, { seq });
  }

  test('a reliable room message whose seq was seen already is dropped', async () => {
    room.seq = 4;
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const heard = [];
    client.on('event:broadcast', (d, env) => heard.push(env.seq ?? 'datagram-class'));
    const ws = server.last;
    roomMessage(ws, 'event:broadcast', { eventName: 'n', payload: 1, senderId: 'u9' }); // 5
    roomMessage(ws, 'event:broadcast', { eventName: 'n', payload: 2, senderId: 'u9' }, 5); // again
    roomMessage(ws, 'event:broadcast', { eventName: 'n', payload: 3, senderId: 'u9' }, 4); // before the snapshot
    ws.push('event:broadcast', { eventName: 'n', payload: 4, senderId: 'u9' }); // no seq: never dropped
    roomMessage(ws, 'event:broadcast', { eventName: 'n', payload: 5, senderId: 'u9' }); // 6
    await until(() => heard.length >= 3, 'three broadcasts');
    assert.deepEqual(heard, [5, 'datagram-class', 6]);
    assert.equal(client.stats.duplicatesDropped, 2);
  });

  test('a lost connection resumes the seat from the last seq; the replay comes marked, in order, once', async () => {
    client = newClient();
    await client.connect();
    const created = await client.create({ name: 'Ana', instrument: 'bass' });
    assert.equal(created.resumeToken, 't1');
    const ws = server.last;
    roomMessage(ws, 'session:user-joined', { user: { ...participant('u2', 'Ben'), status: 'active' } }); // 1
    roomMessage(ws, 'event:broadcast', { eventName: 'n', payload: 1, senderId: 'u2' }); // 2
    await until(() => client.room.participants.length === 2, 'Ben in the room');
    await until(() => client._seat.lastSeq === 2, 'seq 2 seen');

    // Missed while away: seq 3 and 4. The replay repeats 2 as well, which is dropped.
    server.onResume = (env, ws2) => {
      assert.deepEqual(env.data, { roomCode: 'K7F3QX', resumeToken: 't1', lastSeq: 2 });
      ws2.push('session:resumed', {
        roomCode: 'K7F3QX',
        userId: 'u1',
        hostId: 'u1',
        participants: [listed('u1', 'Ana', 'bass'), listed('u2', 'Ben')],
        resumeToken: 't2',
        seq: 4,
        replayed: true,
      }, env.id);
      ws2.push('event:broadcast', { eventName: 'n', payload: 1, senderId: 'u2' }, undefined, { seq: 2 });
      ws2.push('event:broadcast', { eventName: 'n', payload: 3, senderId: 'u2' }, undefined, { seq: 3 });
      ws2.push('session:host-changed', { hostId: 'u2' }, undefined, { seq: 4 });
      ws2.push('event:broadcast', { eventName: 'n', payload: 5, senderId: 'u2' }, undefined, { seq: 5 });
      return true;
    };
    const log = [];
    client.on('resumed', ({ replayed, room: r }) => log.push(['resumed', replayed, r.userId]));
    client.on('message', (env) => env.seq && log.push([env.event, env.seq, env.replayed === true]));
    const reconnected = nextEvent(client, 'reconnected');
    ws.die();
    const [{ room: back }] = await reconnected;
    await until(() => log.length >= 4, 'the replay and the live message');
    assert.equal(back.userId, 'u1', 'the same seat');
    assert.deepEqual(log, [
      ['resumed', true, 'u1'],
      ['event:broadcast', 3, true],
      ['session:host-changed', 4, true],
      ['event:broadcast', 5, false],
    ]);
    assert.equal(client.room.hostId, 'u2');
    assert.equal(client.stats.resumes, 1);
    assert.equal(client.stats.rejoins, 0);
    assert.equal(client.stats.duplicatesDropped, 1);

    // The next resume uses the fresh token and the newest seq.
    server.onResume = null;
    const again = nextEvent(client, 'reconnected');
    server.last.die();
    await again;
    const resume = server.received.filter((e) => e.event === 'session:resume').at(-1);
    assert.deepEqual(resume.data, { roomCode: 'K7F3QX', resumeToken: 't2', lastSeq: 5 });
  });

  test('nothing counts as sent while the seat is not back', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    let answer;
    server.onResume = (env, ws) => {
      answer = () => ws.push('session:resumed', {
        roomCode: 'K7F3QX', userId: 'u1', hostId: 'u1', participants: [listed('u1', 'Ana')], resumeToken: 't9', seq: 0, replayed: false,
      }, env.id);
      return true;
    };
    const sentBefore = client.stats.broadcastsSent;
    server.last.die();
    await until(() => typeof answer === 'function', 'the resume request');
    assert.equal(client.state, 'reconnecting');
    assert.ok(client.room, 'the room stays while the seat is held');
    assert.equal(client.broadcast('note', { type: 'on', note: 60 }), null, 'connected, but the seat is not back yet');
    assert.equal(client.stats.broadcastsSent, sentBefore);
    assert.ok(!server.received.some((e) => e.event === 'event:broadcast'));
    const reconnected = nextEvent(client, 'reconnected');
    answer();
    await reconnected;
    assert.equal(client.broadcast('note', { type: 'on', note: 60 }), 'websocket');
    assert.equal(client.stats.broadcastsSent, sentBefore + 1);
  });

  test('resume_failed falls back to a fresh join; session-ended only when that fails too', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana', instrument: 'organ' });
    server.onResume = (env, ws) => {
      ws.push('error', { code: 'resume_failed', message: 'unknown token' }, env.id);
      return true;
    };
    const seen = [];
    for (const name of ['resume-failed', 'session-ended', 'reconnected']) client.on(name, () => seen.push(name));
    const reconnected = nextEvent(client, 'reconnected');
    server.last.die();
    const [{ room: fresh }] = await reconnected;
    assert.deepEqual(seen, ['resume-failed', 'reconnected']);
    const join = server.received.at(-1);
    assert.equal(join.event, 'session:join');
    assert.deepEqual(join.data, { roomCode: 'K7F3QX', name: 'Ana', instrument: 'organ' });
    assert.equal(fresh.userId, 'u2', 'a fresh seat');
    assert.equal(client.stats.rejoins, 1);

    // The room is gone too: now the session has ended, and nothing is retried.
    const joinAnswer = server.onMessage;
    server.onMessage = (env, ws) => {
      if (env.event === 'session:join') ws.push('error', { code: 'room_not_found', message: 'gone' }, env.id);
      else joinAnswer(env, ws);
    };
    const ended = nextEvent(client, 'session-ended');
    server.last.die();
    const [info] = await ended;
    assert.equal(info.code, 'room_not_found');
    await nextEvent(client, 'reconnected');
    assert.equal(client.room, null);
    assert.equal(client.rejoinTarget, null);
    assert.equal(server.received.filter((e) => e.event === 'session:join').length, 2, 'no name_taken-style retries');
  });

  test('user-away and user-back set participants[].status and become events', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const ws = server.last;
    roomMessage(ws, 'session:user-joined', { user: participant('u2', 'Ben') });
    await nextEvent(client, 'session:user-joined');
    assert.deepEqual(client.room.participants.map((p) => p.status), ['active', 'active'], 'status defaults to active');

    const away = nextEvent(client, 'user-away');
    roomMessage(ws, 'session:user-away', { userId: 'u2' });
    const [{ userId, user }] = await away;
    assert.equal(userId, 'u2');
    assert.equal(user.name, 'Ben');
    assert.equal(client.room.participants.find((p) => p.id === 'u2').status, 'away');

    const back = nextEvent(client, 'user-back');
    roomMessage(ws, 'session:user-back', { userId: 'u2' });
    await back;
    assert.equal(client.room.participants.find((p) => p.id === 'u2').status, 'active');

    roomMessage(ws, 'session:user-away', { userId: 'u2' });
    await nextEvent(client, 'user-away');
    const left = nextEvent(client, 'session:user-left');
    roomMessage(ws, 'session:user-left', { userId: 'u2' });
    await left;
    assert.deepEqual(client.room.participants.map((p) => p.id), ['u1']);
  });

  test('the heartbeat pings on the reliable path and drops a link that goes silent', async () => {
    client = newClient({ heartbeatIntervalMs: 20, heartbeatTimeoutMs: 120 });
    await client.connect();
    await client.create({ name: 'Ana' });
    await until(() => client.rttMs !== null && client.stats.heartbeatsSent >= 2, 'pings answered');
    const ping = server.pings.find((e) => e.event === 'clock:ping');
    assert.equal(typeof ping.data.t0, 'number');
    assert.equal(typeof ping.id, 'number');
    assert.equal(client.stats.websocketSent, 1, 'heartbeats are not counted as sent messages');

    // The link goes dark without closing: no answers any more.
    server.answerPings = false;
    const silentSince = Date.now();
    const [{ reason }] = await nextEvent(client, 'reconnecting');
    const took = Date.now() - silentSince;
    assert.match(reason, /no answer from the server/);
    assert.ok(took >= 100 && took < 1000, `declared dead after ${took} ms`);
    assert.equal(client.stats.heartbeatTimeouts, 1);
    server.answerPings = true;
    await nextEvent(client, 'reconnected');
    assert.equal(client.stats.resumes, 1);
  });

  test('the seat survives a reload through storage; leave() forgets it, close() keeps it', async () => {
    const storage = new MemoryStorage();
    client = newClient({ storage });
    await client.connect();
    await client.create({ name: 'Ana', instrument: 'drums' });
    roomMessage(server.last, 'event:broadcast', { eventName: 'n', payload: 1, senderId: 'u9' }); // seq 1
    await nextEvent(client, 'event:broadcast');
    client.close('page closed'); // pagehide: no session:leave
    assert.ok(!server.received.some((e) => e.event === 'session:leave'));
    const stored = JSON.parse(storage.getItem('jam.seat'));
    assert.deepEqual(
      { roomCode: stored.roomCode, token: stored.resumeToken, lastSeq: stored.lastSeq, name: stored.name },
      { roomCode: 'K7F3QX', token: 't1', lastSeq: 1, name: 'Ana' },
    );

    // The reloaded page: a new client with the same storage.
    const reloaded = newClient({ storage });
    others.push(reloaded);
    assert.deepEqual(reloaded.savedSeat, { roomCode: 'K7F3QX', name: 'Ana', instrument: 'drums' });
    const back = nextEvent(reloaded, 'reconnected');
    assert.equal(reloaded.restore(), true);
    const [{ room: r }] = await back;
    assert.equal(r.userId, 'u1');
    const resume = server.received.at(-1);
    assert.deepEqual(resume.data, { roomCode: 'K7F3QX', resumeToken: 't1', lastSeq: 1 });
    assert.equal(JSON.parse(storage.getItem('jam.seat')).resumeToken, 't2', 'the fresh token is stored');

    await reloaded.leave();
    assert.equal(server.received.at(-1).event, 'session:leave');
    assert.equal(storage.getItem('jam.seat'), null);
    assert.equal(reloaded.savedSeat, null);
    assert.equal(newClient({ storage }).restore(), false, 'nothing to take back after leaving');
  });

  test('a seat resumed elsewhere (close 4000) ends the session here, without fighting back', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const ended = nextEvent(client, 'session-ended');
    server.last.die(4000, 'resumed elsewhere');
    const [info] = await ended;
    assert.equal(info.code, 'resumed_elsewhere');
    assert.equal(client.state, 'disconnected');
    assert.equal(client.room, null);
    await new Promise((r) => setTimeout(r, 60)); // longer than the whole backoff cap
    assert.equal(server.sockets.length, 1, 'no reconnect');
  });
});
