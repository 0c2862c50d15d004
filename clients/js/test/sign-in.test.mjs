// sign-in.test.mjs: the package's `getToken` against the real jam-server started
// with `--jwt-secret-file` (docs/protocol.md §13): tokens on create and join,
// `unauthorized` and `forbidden` in plain words, the token's `name`, a resume
// that needs no token, the refresh that keeps a short-lived seat, and a seat
// whose token runs out: `token_expired`, the close, `session-ended`, and no
// reconnect; and the backend's signing snippet of docs/signing-in.md, run as
// written. Tokens are HS256, signed here with `jose`.
//
// The server's leeway on `exp` is 30 s: a token whose `exp` is 28 s past is
// still taken at a join, and its seat runs out about 2 s later. That is how
// these tests see an expiry in seconds.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { JamClient, describeError } from 'jam-client';
import { refreshDelayMs, tokenTimes } from '../src/sign-in.js';
import { openWebTransport } from '../src/webtransport.js';
import { JamServer, REPO, dropTransport, nextEvent } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const encoder = new TextEncoder();
const nowSec = () => Math.floor(Date.now() / 1000);

/** An HS256 JWT with `claims` (`sub` and `exp` among them), signed with `secret`. */
function sign(claims, secret) {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(encoder.encode(secret));
}

/** A `getToken` that hands out `tokens()`'s results in turn and counts its calls. */
function tokenSource(next) {
  const source = async () => {
    source.calls++;
    return next(source.calls);
  };
  source.calls = 0;
  return source;
}

/** A WebSocket class that keeps every text the client sends (`sent`). */
function recordingSocket() {
  const sent = [];
  class RecordingWebSocket extends WebSocket {
    send(data, ...rest) {
      sent.push(String(data));
      return super.send(data, ...rest);
    }
  }
  return { sent, WebSocket: RecordingWebSocket };
}

/** A WebSocket class that never hands the client a `token_expired` error: only the close tells. */
class NoExpiryErrorWebSocket extends WebSocket {
  set onmessage(fn) {
    super.onmessage = (ev) => {
      if (typeof ev.data === 'string' && ev.data.includes('"token_expired"')) return;
      fn(ev);
    };
  }

  get onmessage() {
    return super.onmessage;
  }
}

test('a token\'s times are read from its payload, unverified; a quarter of the lifetime left is when to refresh', async () => {
  const token = await sign({ sub: 'u1', iat: 1000, exp: 1600, name: 'Zoë' }, 'k');
  assert.deepEqual(tokenTimes(token), { exp: 1600, iat: 1000 });
  assert.deepEqual(tokenTimes(await sign({ sub: 'u1', exp: 1600 }, 'k')), { exp: 1600, iat: null });
  for (const bad of ['', 'a.b', 'x.y.z', `a.${btoa('{"exp":"soon"}')}.c`, null, 42]) assert.equal(tokenTimes(bad), null);
  // 600 s of life: refreshed with 150 s left, at 1450.
  assert.equal(refreshDelayMs({ exp: 1600, iat: 1000 }, 1_000_000, 1_400_000), 50_000);
  // Without iat the lifetime counts from when the token came (1200: 400 s, so 100 s left).
  assert.equal(refreshDelayMs({ exp: 1600, iat: null }, 1_200_000, 1_200_000), 300_000);
  // A token past that point, or past exp, is due at once.
  assert.equal(refreshDelayMs({ exp: 1600, iat: 1000 }, 0, 1_590_000), 0);
  assert.equal(refreshDelayMs({ exp: 1600, iat: 1700 }, 0, 1_700_000), 0);
});

test('a WebTransport session closed with code 7 reports the expired sign-in', async () => {
  let close;
  class FakeWebTransport {
    constructor() {
      this.ready = Promise.resolve();
      this.closed = new Promise((resolve) => {
        close = resolve;
      });
      this.datagrams = { readable: new ReadableStream(), writable: new WritableStream(), maxDatagramSize: 1200 };
    }

    async createBidirectionalStream() {
      return { readable: new ReadableStream(), writable: new WritableStream() };
    }

    close() {}
  }
  const closes = [];
  await openWebTransport({ url: 'https://127.0.0.1:1/jam' }, {
    WebTransport: FakeWebTransport,
    timeoutMs: 1000,
    fallbackMaxDatagramSize: 1000,
    onMessage: () => {},
    onClose: (ev) => closes.push(ev),
  });
  close({ closeCode: 7, reason: 'token expired' });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(closes, [{ reason: 'token expired', takenOver: false, tokenExpired: true }]);
});

describe('jam-client against a jam-server with sign-in on', { timeout: 90_000 }, () => {
  let server;
  const clients = [];

  before(async () => {
    server = await JamServer.startWithSecret();
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

  /** A token of the test server's secret for user `sub`, `life` seconds from now. */
  function token(sub, claims = {}, life = 600) {
    return sign({ sub, iat: nowSec(), exp: nowSec() + life, ...claims }, server.secret);
  }

  /** A token whose `exp` is 28 s past: still taken (30 s leeway), its seat runs out about 2 s later. */
  function nearlyExpired(sub) {
    const exp = nowSec() - 28;
    return sign({ sub, iat: exp - 6, exp }, server.secret);
  }

  /** Every text of the client's own errors and events, to search for a token. */
  function wordsOf(c) {
    const words = [];
    for (const name of ['error', 'session-ended', 'token-refresh-failed', 'resume-failed', 'disconnected']) {
      c.on(name, (data) => words.push(JSON.stringify(data)));
    }
    return words;
  }

  test('the server says sign-in is required; create and join carry a token from getToken', async () => {
    const rec = recordingSocket();
    const anaToken = await token('user-ana');
    const ana = client({ WebSocket: rec.WebSocket, getToken: () => anaToken });
    await ana.connect();
    assert.ok(ana.hasFeature('auth'));
    assert.equal(ana.connectInfo.auth, 'required');
    const created = await ana.create({ name: 'Ana', instrument: 'piano' });
    assert.match(created.roomCode, /^[0-9A-Z]{6}$/);
    const sentCreate = rec.sent.map((t) => JSON.parse(t)).find((m) => m.event === 'session:create');
    assert.equal(sentCreate.data.token, anaToken);

    const getBen = tokenSource(() => token('user-ben'));
    const ben = client({ getToken: getBen });
    await ben.connect();
    const joined = await ben.join({ roomCode: created.roomCode, name: 'Ben' });
    assert.equal(joined.roomCode, created.roomCode);
    assert.equal(getBen.calls, 1);
    assert.deepEqual(ben.room.participants.map((p) => p.name), ['Ana', 'Ben']);

    // Not connected: the request fails without asking the app for a token.
    ben.close();
    await assert.rejects(ben.join({ roomCode: created.roomCode, name: 'Ben' }), { code: 'not_connected' });
    assert.equal(getBen.calls, 1);
  });

  test('no token, a bad one, or one that does not allow this: unauthorized or forbidden, in plain words', async () => {
    const host = client({ getToken: () => token('user-host') });
    await host.connect();
    const { roomCode } = await host.create({ name: 'Host' });

    const words = [];
    const keep = (err) => {
      words.push(err.message, describeError(err), JSON.stringify(err));
      return true;
    };
    const nobody = client();
    await nobody.connect();
    await assert.rejects(nobody.join({ roomCode, name: 'Nobody' }), (err) => {
      assert.equal(err.code, 'unauthorized');
      assert.equal(
        describeError(err),
        'This server lets only signed-in players in, and your sign-in was missing or not accepted. Sign in again.',
      );
      return keep(err);
    });

    const forged = await sign({ sub: 'user-forger', exp: nowSec() + 600 }, 'not the server secret');
    const forger = client({ getToken: () => forged });
    await forger.connect();
    await assert.rejects(forger.join({ roomCode, name: 'Forger' }), (err) => err.code === 'unauthorized' && keep(err));

    const longGone = await sign({ sub: 'user-late', exp: nowSec() - 120 }, server.secret);
    const late = client({ getToken: () => longGone });
    await late.connect();
    await assert.rejects(late.join({ roomCode, name: 'Late' }), (err) => err.code === 'unauthorized' && keep(err));

    const elsewhere = await token('user-elsewhere', { rooms: ['ZZZZZZ'] });
    const other = client({ getToken: () => elsewhere });
    await other.connect();
    await assert.rejects(other.join({ roomCode, name: 'Other' }), (err) => {
      assert.equal(err.code, 'forbidden');
      assert.equal(describeError(err), 'Your sign-in does not allow this: that room is not open to you, or you may not create rooms.');
      return keep(err);
    });
    const noCreate = await token('user-guest', { create: false });
    const guest = client({ getToken: () => noCreate });
    await guest.connect();
    await assert.rejects(guest.create({ name: 'Guest' }), (err) => err.code === 'forbidden' && keep(err));
    // The connection stays usable: a room the token allows.
    const allowed = await guest.join({ roomCode, name: 'Guest' });
    assert.equal(allowed.roomCode, roomCode);

    const down = client({
      getToken: async () => {
        throw new Error('the sign-in service is down');
      },
    });
    await down.connect();
    await assert.rejects(down.join({ roomCode, name: 'Down' }), (err) => {
      assert.equal(err.code, 'unauthorized');
      assert.match(err.message, /getToken failed while joining a room: the sign-in service is down/);
      return keep(err);
    });

    for (const t of [forged, longGone, elsewhere, noCreate]) {
      const signature = t.split('.')[2];
      for (const w of words) assert.ok(!w.includes(signature), `a token in: ${w}`);
    }
  });

  test('the backend snippet of docs/signing-in.md signs tokens the server takes', async () => {
    const doc = fs.readFileSync(path.join(REPO, 'docs', 'signing-in.md'), 'utf8');
    const blocks = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).filter((b) => b.includes("from 'jose'"));
    assert.equal(blocks.length, 1, 'one js block of docs/signing-in.md signs with jose');
    // Inside the package, so that 'jose' resolves as in an app; it reads the secret file at import.
    const file = path.join(here, `.signing-snippet-${process.pid}.mjs`);
    fs.writeFileSync(file, blocks[0]);
    const before = process.env.JAM_JWT_SECRET_FILE;
    process.env.JAM_JWT_SECRET_FILE = server.secretFile;
    let jamToken;
    try {
      ({ jamToken } = await import(pathToFileURL(file).href));
    } finally {
      if (before === undefined) delete process.env.JAM_JWT_SECRET_FILE;
      else process.env.JAM_JWT_SECRET_FILE = before;
      fs.rmSync(file, { force: true });
    }
    const user = { id: 42, name: 'Ana from the docs' };
    const times = tokenTimes(await jamToken(user));
    assert.equal(times.exp - times.iat, 15 * 60);
    const ana = client({ getToken: () => jamToken(user) });
    await ana.connect();
    const { participants } = await ana.create({ name: 'Ana' });
    assert.deepEqual(participants.map((p) => p.name), ['Ana from the docs']);
  });

  test('the token\'s name replaces the name asked for', async () => {
    const named = await token('user-zoe', { name: 'Zoë from the app' });
    const zoe = client({ getToken: () => named });
    await zoe.connect();
    const { participants, userId } = await zoe.create({ name: 'typed name' });
    assert.equal(participants.find((p) => p.id === userId).name, 'Zoë from the app');
  });

  test('a dropped link resumes the seat without a token', async () => {
    const getToken = tokenSource(() => token('user-drop'));
    const ana = client({ getToken, reconnectBaseMs: 50, reconnectMaxMs: 200 });
    await ana.connect();
    const { userId } = await ana.create({ name: 'Ana' });
    const resumed = nextEvent(ana, 'resumed', () => true, 20_000);
    dropTransport(ana);
    const [{ room }] = await resumed;
    assert.equal(room.userId, userId);
    assert.equal(getToken.calls, 1, 'the resume token proves the seat');
  });

  test('a reload takes the seat back and refreshes its token at once, its expiry unknown to the new page', async () => {
    const stored = new Map();
    const storage = { getItem: (k) => stored.get(k) ?? null, setItem: (k, v) => stored.set(k, v), removeItem: (k) => stored.delete(k) };
    const first = client({ storage, getToken: () => token('user-reload') });
    await first.connect();
    const { userId } = await first.create({ name: 'Ana' });
    first.close('page closed');

    const getToken = tokenSource(() => token('user-reload'));
    const second = client({ storage, getToken });
    const refreshed = nextEvent(second, 'token-refreshed', () => true, 20_000);
    const reconnected = nextEvent(second, 'reconnected', () => true, 20_000);
    assert.equal(second.restore(), true);
    assert.equal((await reconnected)[0].room.userId, userId);
    const [{ exp }] = await refreshed;
    assert.ok(exp > nowSec() + 500, `exp ${exp}`);
    assert.equal(getToken.calls, 1);
  });

  test('refreshing ahead of expiry keeps a short-lived seat', async () => {
    // The first token has about 2 s left at the server; every later one lives 6 s.
    const getToken = tokenSource((n) => (n === 1 ? nearlyExpired('user-keep') : token('user-keep', {}, 6)));
    const ana = client({ getToken });
    const words = wordsOf(ana);
    const refreshes = [];
    ana.on('token-refreshed', ({ exp }) => refreshes.push(exp));
    await ana.connect();
    const { roomCode, userId } = await ana.create({ name: 'Ana' });
    const ben = client({ getToken: () => token('user-keep-ben') });
    await ben.connect();
    await ben.join({ roomCode, name: 'Ben' });
    const left = [];
    ben.on('session:user-left', ({ userId: id }) => left.push(id));

    // At once (the first token is past its refresh point), then with a quarter of 6 s left.
    await nextEvent(ana, 'token-refreshed', () => refreshes.length >= 2, 15_000);
    assert.equal(getToken.calls, 3);
    assert.ok(refreshes[1] > refreshes[0]);
    // Well past the first token's end: Ana is still in the room and still heard.
    const heard = nextEvent(ben, 'event:broadcast');
    assert.equal(ana.broadcast('note', { note: 64 }), 'websocket');
    assert.equal((await heard)[0].senderId, userId);
    assert.deepEqual(left, []);
    assert.equal(ana.state, 'connected');
    assert.deepEqual(words, []);
  });

  test('a seat whose token runs out: token_expired, the close, session-ended in plain words, no reconnect', async () => {
    const hostToken = await token('user-expiry-host');
    const host = client({ getToken: () => hostToken });
    await host.connect();
    const { roomCode } = await host.create({ name: 'Host' });

    /**
     * Joins a client whose seat runs out about 2 s later, and waits for the
     * end: resolves with what it saw.
     */
    async function expire(sub, getToken, options = {}) {
      const c = client({ getToken, reconnectBaseMs: 50, ...options });
      const seen = { errors: [], refreshFailed: [], reconnecting: 0, words: wordsOf(c) };
      c.on('error', ({ code }) => seen.errors.push(code));
      c.on('token-refresh-failed', (data) => seen.refreshFailed.push(data));
      c.on('reconnecting', () => seen.reconnecting++);
      await c.connect();
      const { userId } = await c.join({ roomCode, name: sub });
      const goneForHost = nextEvent(host, 'session:user-left', ({ userId: id }) => id === userId, 15_000);
      const ended = nextEvent(c, 'session-ended', () => true, 15_000);
      const stopped = nextEvent(c, 'disconnected', () => true, 15_000);
      [seen.ended] = await ended;
      [seen.disconnected] = await stopped;
      // The reconnect loop would have said `reconnecting` as the link closed, before this.
      seen.stateAfter = c.state;
      seen.room = c.room;
      await goneForHost;
      seen.client = c;
      return seen;
    }

    const stale = await nearlyExpired('user-refused');
    const forged = await sign({ sub: 'user-refused', iat: nowSec(), exp: nowSec() + 600 }, 'not the server secret');
    const sameStale = await nearlyExpired('user-same');
    const deafStale = await nearlyExpired('user-deaf');
    const refusedTokens = tokenSource((n) => (n === 1 ? stale : forged));
    const sameTokens = tokenSource(() => sameStale);
    const [refused, same, deaf] = await Promise.all([
      // Every refresh refused (`unauthorized` twice), then the seat runs out.
      expire('Refused', refusedTokens),
      // A getToken that keeps giving the same nearly expired token: one refresh, no loop.
      expire('Same', sameTokens),
      // The error lost: the close 4003 alone ends the seat.
      expire('Deaf', () => deafStale, { WebSocket: NoExpiryErrorWebSocket }),
    ]);

    for (const seen of [refused, same, deaf]) {
      assert.equal(seen.ended.code, 'token_expired');
      assert.equal(seen.ended.roomCode, roomCode);
      assert.equal(seen.ended.message, 'Your sign-in expired; sign in again to rejoin.');
      assert.equal(seen.stateAfter, 'disconnected');
      assert.equal(seen.room, null);
      assert.equal(seen.reconnecting, 0, 'no reconnect after the server ended the seat');
      assert.equal(seen.client.savedSeat, null, 'nothing left to take back');
    }
    assert.deepEqual(refused.errors, ['unauthorized', 'unauthorized', 'token_expired'], 'the two refreshes refused, then the end');
    assert.equal(refusedTokens.calls, 3, 'the join, a refresh, one more after unauthorized');
    assert.deepEqual(refused.refreshFailed.map((f) => f.code), ['unauthorized']);
    assert.equal(sameTokens.calls, 2, 'the join and one refresh');
    assert.equal(same.refreshFailed.length, 1);
    assert.deepEqual(same.errors, ['token_expired']);
    assert.deepEqual(deaf.errors, [], 'the error never reached it');
    assert.match(deaf.disconnected.reason, /4003/);

    for (const t of [stale, forged, sameStale, deafStale]) {
      const signature = t.split('.')[2];
      for (const w of [...refused.words, ...same.words, ...deaf.words]) assert.ok(!w.includes(signature), `a token in: ${w}`);
    }

    // Joining again is the app's call: with a fresh token it works.
    const again = refused.client;
    await again.connect();
    const rejoined = await again.join({ roomCode, name: 'Refused' }).catch((err) => err);
    assert.equal(rejoined.code, 'unauthorized', 'getToken still gives a forged token');
  });
});
