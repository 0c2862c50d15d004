// real-server.test.mjs: the package in Node against the real jam-server over
// WebSocket (Node 20 has no global WebSocket: the `ws` package's is passed in
// as the `WebSocket` option): create, join, broadcast, leave, resume after a
// dropped link and after a "reload", a server of another protocol version, and
// a server that refuses the page's origin.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { JamClient, JamError, PROTOCOL_FEATURES, PROTOCOL_VERSION, VERSION, describeError } from 'jam-client';
import { JamServer, dropTransport, nextEvent } from './server.mjs';

/** A WebSocket class that counts the sockets made with it (`opened`). */
function socketCounter() {
  const counter = { opened: 0 };
  counter.WebSocket = class extends WebSocket {
    constructor(...args) {
      super(...args);
      counter.opened++;
    }
  };
  return counter;
}

test('the package\'s version states the protocol it speaks (1.2.x: protocol 1 with the 1.1 features and the 1.2 additions)', () => {
  const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(VERSION, pkg.version);
  assert.match(pkg.version, new RegExp(`^${PROTOCOL_VERSION}\\.2\\.\\d+$`));
  assert.deepEqual([...PROTOCOL_FEATURES], ['resume', 'clock', 'latency', 'tempo', 'origins', 'auth']);
});

describe('jam-client against the real jam-server', { timeout: 60_000 }, () => {
  let server;
  const clients = [];

  before(async () => {
    server = await JamServer.start();
  });

  after(async () => {
    for (const c of clients) c.close();
    if (server) await server.stop();
  });

  /** A client of the test server; `options` override the defaults. */
  function client(options = {}) {
    const c = new JamClient({ baseUrl: server.baseUrl, WebSocket, storage: null, ...options });
    clients.push(c);
    return c;
  }

  test('connects over WebSocket, with the server\'s protocol and features', async () => {
    const ana = client();
    assert.equal(await ana.connect(), 'websocket', 'Node has no WebTransport: auto falls back to WebSocket');
    assert.equal(ana.state, 'connected');
    assert.equal(ana.connectInfo.protocol, PROTOCOL_VERSION);
    for (const f of ['resume', 'clock', 'latency', 'tempo']) assert.ok(ana.hasFeature(f), f);
    ana.close();
    assert.equal(ana.state, 'disconnected');
  });

  test('create, join, broadcast and leave: presence and notes go across', async () => {
    const ana = client();
    const ben = client();
    await Promise.all([ana.connect(), ben.connect()]);

    const created = await ana.create({ name: 'Ana', instrument: 'piano' });
    assert.match(created.roomCode, /^[0-9A-Z]{6}$/);
    assert.equal(created.hostId, created.userId);
    assert.deepEqual(ana.room.participants.map((p) => [p.name, p.instrument]), [['Ana', 'piano']]);

    const joinedSeen = nextEvent(ana, 'session:user-joined');
    // Codes are forgiving: lower case is the same room.
    const joined = await ben.join({ roomCode: created.roomCode.toLowerCase(), name: 'Ben', instrument: 'drums' });
    assert.equal(joined.roomCode, created.roomCode);
    assert.equal(joined.hostId, created.userId);
    const [{ user }] = await joinedSeen;
    assert.deepEqual([user.name, user.instrument, user.id], ['Ben', 'drums', joined.userId]);
    assert.deepEqual(ana.room.participants.map((p) => p.name), ['Ana', 'Ben']);
    assert.deepEqual(ben.room.participants.map((p) => p.name), ['Ana', 'Ben']);

    // A note each way; never back to the sender (a barrier: the other's note
    // arrives after ours would have).
    const heardByBen = nextEvent(ben, 'event:broadcast');
    let anaHeardItself = false;
    const offAna = ana.on('event:broadcast', ({ senderId }) => {
      if (senderId === ana.room.userId) anaHeardItself = true;
    });
    assert.equal(ana.broadcast('note', { type: 'on', note: 60, velocity: 100 }), 'websocket');
    const [note, envelope, channel] = await heardByBen;
    assert.equal(note.eventName, 'note');
    assert.deepEqual(note.payload, { type: 'on', note: 60, velocity: 100 });
    assert.equal(note.senderId, created.userId);
    assert.equal(typeof note.serverTime, 'number');
    assert.equal(envelope.event, 'event:broadcast');
    assert.equal(channel, 'websocket');
    const heardByAna = nextEvent(ana, 'event:broadcast');
    ben.broadcast('note', { type: 'on', note: 36, velocity: 90 });
    assert.equal((await heardByAna)[0].payload.note, 36);
    offAna();
    assert.equal(anaHeardItself, false);
    assert.equal(ana.stats.broadcastsSent, 1);
    assert.equal(ben.stats.broadcastsReceived, 1);

    // Leaving: the other sees it at once, and the host passes on.
    const leftSeen = nextEvent(ben, 'session:user-left');
    const hostSeen = nextEvent(ben, 'session:host-changed');
    assert.deepEqual(await ana.leave(), { roomCode: created.roomCode });
    assert.equal(ana.room, null);
    assert.equal((await leftSeen)[0].userId, created.userId);
    assert.equal((await hostSeen)[0].hostId, joined.userId);
    assert.deepEqual(ben.room.participants.map((p) => p.name), ['Ben']);
    assert.equal(ben.room.hostId, joined.userId);
    assert.equal(ana.broadcast('note', {}), null, 'out of the room nothing is sent');
  });

  test('errors carry the protocol\'s codes and a default text', async () => {
    const ana = client();
    await ana.connect();
    await assert.rejects(ana.join({ roomCode: 'ZZZZZZ', name: 'Ana' }), (err) => {
      assert.ok(err instanceof JamError);
      assert.equal(err.code, 'room_not_found');
      assert.equal(describeError(err), 'no room with that code');
      assert.equal(describeError(err, { room_not_found: 'No such session.' }), 'No such session.');
      assert.equal(describeError(err, { name_taken: 'Pick another name.' }), 'no room with that code', 'the default covers codes without words');
      return true;
    });
    const { roomCode } = await ana.create({ name: 'Ana' });
    const ben = client();
    await ben.connect();
    await assert.rejects(ben.join({ roomCode, name: 'ana' }), { code: 'name_taken' });
    await assert.rejects(ana.create({ name: 'Ana' }), { code: 'already_in_session' });
    const never = client();
    await assert.rejects(never.create({ name: 'X' }), { code: 'not_connected' });
  });

  test('a dropped link resumes the same seat, and notes flow again', async () => {
    const ana = client({ reconnectBaseMs: 50, reconnectMaxMs: 200 });
    const ben = client();
    await Promise.all([ana.connect(), ben.connect()]);
    const { roomCode, userId } = await ana.create({ name: 'Ana', instrument: 'piano' });
    await ben.join({ roomCode, name: 'Ben' });

    const away = nextEvent(ben, 'user-away', ({ userId: id }) => id === userId, 20_000);
    const back = nextEvent(ben, 'user-back', ({ userId: id }) => id === userId, 20_000);
    const resumed = nextEvent(ana, 'resumed', () => true, 20_000);
    const reconnected = nextEvent(ana, 'reconnected', () => true, 20_000);
    dropTransport(ana);
    const [{ room }] = await resumed;
    await reconnected;
    assert.equal(ana.state, 'connected');
    assert.equal(room.userId, userId, 'the same seat, not a new one');
    assert.equal(ana.stats.resumes, 1);
    assert.equal(ana.stats.rejoins, 0);
    await away;
    await back;
    assert.deepEqual(ben.room.participants.map((p) => [p.name, p.status]), [['Ana', 'active'], ['Ben', 'active']]);

    const heard = nextEvent(ben, 'event:broadcast');
    ana.broadcast('note', { note: 62 });
    assert.equal((await heard)[0].payload.note, 62);
  });

  test('a "reload" takes the seat back from storage with restore()', async () => {
    const storage = new Map();
    const store = { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, v), removeItem: (k) => storage.delete(k) };
    const first = client({ storage: store });
    await first.connect();
    const { roomCode, userId } = await first.create({ name: 'Ana' });
    first.close('page closed');
    assert.deepEqual(first.savedSeat, { roomCode, name: 'Ana', instrument: '' });

    const second = client({ storage: store });
    const reconnected = nextEvent(second, 'reconnected', () => true, 20_000);
    assert.equal(second.restore(), true);
    const [{ room }] = await reconnected;
    assert.equal(room.roomCode, roomCode);
    assert.equal(room.userId, userId);
    assert.equal(second.stats.resumes, 1);
    await second.leave();
    assert.equal(storage.size, 0, 'leaving forgets the stored seat');
  });

  test('a server that speaks another protocol version is refused before anything is sent', async () => {
    const sockets = socketCounter();
    const protocol2 = async (url, init) => {
      const info = await (await fetch(url, init)).json();
      return Response.json({ ...info, protocol: 2 });
    };
    const c = client({ fetch: protocol2, WebSocket: sockets.WebSocket });
    await assert.rejects(c.connect(), (err) => {
      assert.ok(err instanceof JamError);
      assert.equal(err.code, 'protocol_mismatch');
      assert.equal(err.serverProtocol, 2);
      assert.match(err.message, /speaks protocol 2; this client \(jam-client 1\.2\.\d+\) speaks protocol 1/);
      return true;
    });
    assert.equal(c.state, 'disconnected');
    assert.equal(sockets.opened, 0, 'no socket was opened');
  });

  test('a server that comes back on another protocol version ends the session instead of retrying', async () => {
    let protocol = PROTOCOL_VERSION;
    const switching = async (url, init) => {
      const info = await (await fetch(url, init)).json();
      return Response.json({ ...info, protocol });
    };
    const c = client({ fetch: switching, reconnectBaseMs: 20, reconnectMaxMs: 50 });
    await c.connect();
    const { roomCode } = await c.create({ name: 'Ana' });
    protocol = 99;
    const ended = nextEvent(c, 'session-ended', () => true, 20_000);
    const stopped = nextEvent(c, 'disconnected', () => true, 20_000);
    let attempts = 0;
    c.on('reconnecting', () => attempts++);
    dropTransport(c);
    const [{ roomCode: endedCode, code }] = await ended;
    await stopped;
    assert.equal(endedCode, roomCode);
    assert.equal(code, 'protocol_mismatch');
    assert.equal(c.state, 'disconnected');
    assert.equal(attempts, 1, 'one attempt, then it stops');
  });

  test('close() while connecting leaves no socket open (a component unmounted at once)', async () => {
    const sockets = [];
    class TrackedWebSocket extends WebSocket {
      constructor(...args) {
        super(...args);
        sockets.push(this);
      }
    }
    const c = client({ WebSocket: TrackedWebSocket });
    const connecting = c.connect();
    // Close once the socket exists but before it has opened.
    await new Promise((resolve) => {
      const check = () => (sockets.length ? resolve() : setTimeout(check, 1));
      check();
    });
    c.close('unmounted');
    await assert.rejects(connecting, { code: 'disconnected' });
    assert.equal(c.state, 'disconnected');
    assert.equal(c.transport, null);
    assert.equal(sockets.length, 1);
    const closed = sockets[0].readyState === WebSocket.CLOSED ? null : new Promise((resolve) => sockets[0].once('close', resolve));
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('socket still open after 5 s')), 5000))]);
    assert.equal(sockets[0].readyState, WebSocket.CLOSED);
  });

  test('the describeError option words the client\'s own events', async () => {
    // A seat in a room that does not exist: the resume and the fresh join both fail.
    const storage = new Map([['jam.seat', JSON.stringify({ roomCode: 'ABCDEF', name: 'Ana', resumeToken: 't', lastSeq: 0 })]]);
    const d = client({
      storage: { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, v), removeItem: (k) => storage.delete(k) },
      describeError: (e) => `custom: ${typeof e === 'string' ? e : e?.code}`,
    });
    const ended = nextEvent(d, 'session-ended', () => true, 20_000);
    d.restore();
    const [{ code, message }] = await ended;
    assert.equal(code, 'room_not_found');
    assert.equal(message, 'custom: room_not_found');
  });
});

describe('jam-client against a jam-server that allows only some origins', { timeout: 60_000 }, () => {
  let server;

  before(async () => {
    server = await JamServer.start(['--allowed-origins', 'https://allowed.example']);
  });

  after(async () => {
    if (server) await server.stop();
  });

  /** A `fetch` that sends `origin` as the page's Origin, as a browser would. */
  const fetchFrom = (origin) => (url, init) => fetch(url, { ...init, headers: { Origin: origin } });

  test('a refused origin is the error origin_not_allowed, in plain words, before any socket', async () => {
    const sockets = socketCounter();
    const c = new JamClient({ baseUrl: server.baseUrl, WebSocket: sockets.WebSocket, storage: null, fetch: fetchFrom('https://elsewhere.example') });
    try {
      await assert.rejects(c.connect(), (err) => {
        assert.ok(err instanceof JamError);
        assert.equal(err.code, 'origin_not_allowed');
        assert.equal(
          err.message,
          "This server does not accept connections from this page's address (origin). Ask whoever runs the server to add it to --allowed-origins.",
        );
        assert.equal(describeError(err), err.message);
        return true;
      });
      assert.equal(c.state, 'disconnected');
      assert.equal(sockets.opened, 0, 'no socket was opened');
    } finally {
      c.close();
    }
  });

  test('an allowed origin connects', async () => {
    const c = new JamClient({ baseUrl: server.baseUrl, WebSocket, storage: null, fetch: fetchFrom('https://allowed.example') });
    assert.equal(await c.connect(), 'websocket');
    c.close();
  });
});
