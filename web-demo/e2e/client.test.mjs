// client.test.mjs: jam-client.js logic in Node, against a scripted fake
// server (no browser, no real server): request ids, transport choice,
// reconnecting with backoff, rejoin retries, and the end of a session. The
// browser tests (jam.test.mjs) cover the real transports.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { JamClient, JamError, describeError, hexToBytes } from '../jam-client.js';

const BASE = 'http://jam.test:3001/';
const CONNECT_INFO = {
  webtransport: null,
  websocket: { url: 'ws://jam.test:3001/ws' },
  protocol: 1,
};

/**
 * A fake server reachable through stubbed `fetch` and `WebSocket` globals.
 * `onMessage(envelope, socket)` scripts the answers.
 */
class FakeServer {
  constructor() {
    this.sockets = [];
    this.fetches = 0;
    this.up = true;
    this.connectInfo = CONNECT_INFO;
    this.onMessage = () => {};
    this.received = [];
  }

  install() {
    const server = this;
    this.saved = { fetch: globalThis.fetch, WebSocket: globalThis.WebSocket, WebTransport: globalThis.WebTransport };
    globalThis.fetch = async (url) => {
      server.fetches++;
      if (!server.up) throw new TypeError('fetch failed');
      assert.equal(String(url), new URL('/connect', BASE).href);
      return { ok: true, status: 200, json: async () => structuredClone(server.connectInfo) };
    };
    globalThis.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        server.sockets.push(this);
        setTimeout(() => {
          if (!server.up) {
            this.onerror?.({});
            this.onclose?.({ code: 1006, reason: '' });
            return;
          }
          this.readyState = 1;
          this.onopen?.({});
        }, 1);
      }

      send(text) {
        const env = JSON.parse(text);
        server.received.push(env);
        server.onMessage(env, this);
      }

      /** The client closing. */
      close(code = 1000, reason = '') {
        if (this.readyState === 3) return;
        this.readyState = 3;
        setTimeout(() => this.onclose?.({ code, reason }), 1);
      }

      /** The server talking. */
      push(event, data, id) {
        const env = { event, data };
        if (id !== undefined) env.id = id;
        setTimeout(() => this.readyState === 1 && this.onmessage?.({ data: JSON.stringify(env) }), 1);
      }

      /** The connection dying under the client. */
      die() {
        this.readyState = 3;
        setTimeout(() => this.onclose?.({ code: 1006, reason: '' }), 1);
      }
    };
    delete globalThis.WebTransport;
  }

  restore() {
    globalThis.fetch = this.saved.fetch;
    globalThis.WebSocket = this.saved.WebSocket;
    if (this.saved.WebTransport) globalThis.WebTransport = this.saved.WebTransport;
  }

  get last() {
    return this.sockets[this.sockets.length - 1];
  }
}

function participant(id, name, instrument = 'piano') {
  return { id, name, instrument };
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
  return new JamClient({ baseUrl: BASE, reconnectBaseMs: 5, reconnectMaxMs: 40, ...options });
}

describe('jam-client.js', { timeout: 20_000 }, () => {
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
    assert.deepEqual(client.room.participants, [participant('u1', 'Ana', 'piano')]);
    const sent = server.received[0];
    assert.equal(sent.event, 'session:create');
    assert.equal(typeof sent.id, 'number');
    assert.deepEqual(sent.data, { name: ' Ana ', instrument: 'piano' });
    assert.equal(client.stats.websocketSent, 1);
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
    assert.match(describeError('name_taken'), /already uses that name/);
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

  test('_debugDropTransport looks like a network fault to the client', async () => {
    client = newClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const reconnected = nextEvent(client, 'reconnected');
    client._debugDropTransport();
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
