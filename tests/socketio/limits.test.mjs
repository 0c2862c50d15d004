// The Socket.IO endpoint under the same rules as the other transports: origins,
// per-address caps, join deadline, rate limits, sizes, the slow-consumer rule, and
// hostile input (which gets an error or a clean disconnect, never a crash).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  T, connected, next, nextData, roomOfTwo, withServer,
} from './harness.mjs';

/**
 * Long-polls `url` until a response matches `pattern` (at most five polls): an
 * Engine.IO ping ("2") may be queued ahead of the packet awaited.
 */
async function pollUntil(url, pattern) {
  const seen = [];
  for (let i = 0; i < 5; i++) {
    const body = await (await fetch(url)).text();
    if (pattern.test(body)) return body;
    seen.push(body);
  }
  assert.fail(`no poll matched ${pattern}: ${JSON.stringify(seen)}`);
}

/** Whether a fresh client can still create a room (the server serves others). */
async function stillServes(srv, s) {
  const c = s.connect(srv.url, { transports: ['websocket'] });
  const answer = await c.timeout(T).emitWithAck('session:create', { name: 'Check' });
  assert.equal(answer.event, 'session:created');
}

/** The reason of the next disconnect or connect_error, whichever comes first. */
function ended(socket, ms = T) {
  return Promise.race([
    next(socket, 'disconnect', ms).then(([reason]) => `disconnect: ${reason}`),
    next(socket, 'connect_error', ms).then(([e]) => `connect_error: ${e.message}`),
  ]);
}


/** `/metrics`' count of connections refused for `reason`. */
async function refusals(srv, reason) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`jam_connections_refused_total{reason="${reason}"} `));
  assert.ok(line, `no refusals series for ${reason}`);
  return Number(line.split(' ')[1]);
}

test('origins: a page from another origin is refused with 403 before any message; an allowed one works, with CORS', async () => {
  await withServer(['--allowed-origins', 'https://app.example'], async (srv, s) => {
    for (const transports of [['polling', 'websocket'], ['websocket']]) {
      const evil = s.connect(srv.url, { transports, reconnection: false, extraHeaders: { origin: 'https://evil.example' } });
      assert.match(await ended(evil), /^connect_error/, transports.join());
    }
    const app = s.connect(srv.url, { reconnection: false, extraHeaders: { origin: 'https://app.example' } });
    const answer = await app.timeout(T).emitWithAck('session:create', { name: 'Ana' });
    assert.equal(answer.event, 'session:created');
    // Native clients send no Origin and are allowed.
    await stillServes(srv, s);

    const handshake = `${srv.url}/socket.io/?EIO=4&transport=polling`;
    const refused = await fetch(handshake, { headers: { origin: 'https://evil.example' } });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
    const allowed = await fetch(handshake, { headers: { origin: 'https://app.example' } });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(allowed.headers.get('vary'), /Origin/);
    assert.match(await allowed.text(), /"sid"/);
    const preflight = await fetch(handshake, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(preflight.headers.get('access-control-allow-headers'), 'content-type');
    // Every refusal is counted by reason, as on the other transports: two clients, one fetch.
    assert.ok(await refusals(srv, 'origin') >= 3, 'origin refusals in /metrics');
  });
});

test('per-address cap: one more Engine.IO session is refused with 429; a closed one frees its place', async () => {
  await withServer(['--max-connections-per-address', '4'], async (srv, s) => {
    // a polls first: its session, its long poll and a POST take up to three places.
    const a = s.connect(srv.url);
    await connected(a);
    // a's upgrade to WebSocket belongs to its admitted session: it takes no second place,
    // and the polls are over.
    if (a.io.engine.transport.name !== 'websocket') await next(a.io.engine, 'upgrade');
    const others = [1, 2, 3].map(() => s.connect(srv.url, { transports: ['websocket'] }));
    for (const o of others) await connected(o);
    for (const transports of [['polling', 'websocket'], ['websocket']]) {
      const c = s.connect(srv.url, { transports, reconnection: false });
      assert.match(await ended(c), /^connect_error/, transports.join());
    }
    const status = (await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`)).status;
    assert.equal(status, 429);
    assert.ok(await refusals(srv, 'address_limit') >= 3, 'address refusals in /metrics');
    a.disconnect();
    // The place comes back once the server has closed a's session.
    const deadline = Date.now() + T;
    for (;;) {
      // A polling client would need a place for its polls too.
      const d = s.connect(srv.url, { transports: ['websocket'], reconnection: false });
      const outcome = await Promise.race([
        next(d, 'connect').then(() => 'connect'),
        next(d, 'connect_error').then(() => 'refused'),
      ]);
      if (outcome === 'connect') break;
      assert.ok(Date.now() < deadline, 'the place came back within the bound');
    }
  });
});

test('join deadline: a connection that joins no room is disconnected by the server', async () => {
  await withServer(['--join-deadline', '1s'], async (srv, s) => {
    const idle = s.connect(srv.url);
    await connected(idle);
    const [reason] = await next(idle, 'disconnect', 5_000);
    assert.equal(reason, 'io server disconnect');
  });
});

test('malformed and wrongly typed events answer invalid_message and the connection stays usable', async () => {
  await withServer([], async (srv, s) => {
    const c = s.connect(srv.url);
    const cases = [
      [['session:create'], 'invalid_message'],
      [['session:create', 'Ana'], 'invalid_message'],
      [['session:create', [1, 2]], 'invalid_message'],
      [['session:create', null], 'invalid_message'],
      [['session:create', { name: 42 }], 'invalid_message'],
      [['session:create', { name: '' }], 'invalid_message'],
      [['session:create', { name: 'x'.repeat(33) }], 'invalid_message'],
      [['session:join', { roomCode: 5, name: 'A' }], 'invalid_message'],
      [['session:join', { roomCode: 'ZZZZZZ' }], 'invalid_message'],
      [['no-such-event', {}], 'invalid_message'],
      [['event:broadcast', { roomCode: 'ZZZZZZ', eventName: 'n', payload: 1 }], 'not_in_session'],
      [['session:join', { roomCode: 'ZZZZZZ', name: 'A' }], 'room_not_found'],
      [['event:broadcast', { roomCode: 'ZZZZZZ', eventName: 'n', payload: Buffer.from([1, 2, 3]) }], 'invalid_message'],
    ];
    for (const [args, code] of cases) {
      const answer = await c.timeout(T).emitWithAck(...args);
      assert.deepEqual([answer.event, answer.data.code], ['error', code], JSON.stringify(args));
      // The error event comes too; spread the cases so the error throttle (10 a
      // second) is not what is tested here.
      await new Promise((r) => setTimeout(r, 120));
    }
    const ok = await c.timeout(T).emitWithAck('session:create', { name: 'Ana' });
    assert.equal(ok.event, 'session:created');
  });
});

test('sizes: over the message limit answers payload_too_large; over the Engine.IO limit ends the connection', async () => {
  await withServer([], async (srv, s) => {
    const { a, b, roomCode } = await roomOfTwo(s, srv.url);
    const big = 'x'.repeat(20 * 1024);
    const err = nextData(a, 'error');
    const answer = await a.timeout(T).emitWithAck('event:broadcast', { roomCode, eventName: 'n', payload: big });
    assert.deepEqual([answer.event, answer.data.code], ['error', 'payload_too_large']);
    assert.equal((await err).code, 'payload_too_large');
    // Nothing reached b; a still works.
    const heard = nextData(b, 'event:broadcast');
    a.emit('event:broadcast', { roomCode, eventName: 'n', payload: 'small' });
    assert.equal((await heard).payload, 'small');

    for (const transports of [['websocket'], ['polling']]) {
      const h = s.connect(srv.url, { transports, reconnection: false });
      await connected(h);
      h.emit('event:broadcast', { roomCode, eventName: 'n', payload: 'y'.repeat(2 * 1024 * 1024) });
      assert.match(await ended(h, 10_000), /^disconnect/, transports.join());
    }
    await stillServes(srv, s);
  });
});

test('floods: the send rate answers rate_limited and drops the excess; room requests have their own budget', async () => {
  await withServer(['--rate-limit', '100', '--rate-burst', '200'], async (srv, s) => {
    const { a, b, roomCode } = await roomOfTwo(s, srv.url, { opts: { transports: ['websocket'] } });
    let heard = 0;
    b.on('event:broadcast', () => { heard += 1; });
    const limited = nextData(a, 'error', 10_000);
    for (let i = 0; i < 3000; i++) a.emit('event:broadcast', { roomCode, eventName: 'n', payload: i });
    assert.equal((await limited).code, 'rate_limited');
    // A marker after the flood: once b has it, b has everything it will get.
    const marker = await a.timeout(10_000).emitWithAck('clock:ping', { t0: 1 });
    assert.equal(marker.event, 'clock:pong');
    assert.ok(heard >= 200 && heard < 3000, `b heard ${heard} of 3000`);

    // Room requests: 20 in a burst (create + leave pairs), then rate_limited.
    const c = s.connect(srv.url, { transports: ['websocket'] });
    let refused = null;
    for (let i = 0; i < 15 && !refused; i++) {
      for (const [name, data] of [['session:create', { name: 'Cy' }], ['session:leave', null]]) {
        const room = data ?? { roomCode: c.lastRoom };
        const answer = await c.timeout(T).emitWithAck(name, room);
        if (answer?.event === 'session:created') c.lastRoom = answer.data.roomCode;
        if (answer?.event === 'error') { refused = [i, answer.data.code]; break; }
      }
    }
    assert.deepEqual(refused, [10, 'rate_limited']);
    await stillServes(srv, s);
  });
});

test('raw Engine.IO garbage gets an HTTP error or a closed session, never a crash', async () => {
  await withServer([], async (srv, s) => {
    const base = `${srv.url}/socket.io/?EIO=4&transport=polling`;
    assert.equal((await fetch(`${base}&sid=nope`)).status, 400);
    assert.equal((await fetch(`${base}&sid=nope`, { method: 'POST', body: '4hi' })).status, 400);
    const v3 = await fetch(`${srv.url}/socket.io/?EIO=3&transport=polling`);
    assert.ok(v3.status >= 400, `EIO=3 answered ${v3.status}`);
    for (const body of ['zzz', '42["session:create"', '42[5,{}]', '40/nope,', '4', '\u00ff\u00fe', '451-["x",{"_placeholder":true,"num":0}]']) {
      const hs = await (await fetch(base)).text();
      const sid = JSON.parse(hs.slice(1)).sid;
      const url = `${base}&sid=${sid}`;
      const connect = await fetch(url, { method: 'POST', body: '40' });
      assert.equal(connect.status, 200);
      const res = await fetch(url, { method: 'POST', body });
      assert.ok([200, 400].includes(res.status), `${JSON.stringify(body)} answered ${res.status}`);
      assert.ok(srv.alive(), `after ${JSON.stringify(body)}`);
    }
    await stillServes(srv, s);
  });
});

test('slow consumer: a member that stops polling is cut off and turns away; the room carries on', async () => {
  await withServer(['--outbox-capacity', '16'], async (srv, s) => {
    const { a, b, roomCode } = await roomOfTwo(s, srv.url, { opts: { transports: ['websocket'] } });
    // A raw long-polling client joins, then never polls again.
    const base = `${srv.url}/socket.io/?EIO=4&transport=polling`;
    const sid = JSON.parse((await (await fetch(base)).text()).slice(1)).sid;
    const url = `${base}&sid=${sid}`;
    await fetch(url, { method: 'POST', body: '40' });
    await pollUntil(url, /40\{"sid"/);
    await fetch(url, { method: 'POST', body: `42${JSON.stringify(['session:join', { roomCode, name: 'Slow' }])}` });
    assert.match(await (await fetch(url)).text(), /session:joined/);

    const away = nextData(a, 'session:user-away', 10_000);
    // Paced by b, which reads: only the one that does not read falls behind.
    for (let i = 0; i < 100; i++) {
      const heard = nextData(b, 'event:broadcast');
      a.emit('event:broadcast', { roomCode, eventName: 'n', payload: i });
      assert.equal((await heard).payload, i);
    }
    await away;
    const stats = await (await fetch(`${srv.url}/stats`)).json();
    assert.ok(stats.slowConsumers >= 1, JSON.stringify(stats));
  });
});

test('keep-alive: a member that goes silent (no polls, no pongs) is dropped within the peer timeout and turns away', async () => {
  await withServer(['--ping-interval', '500ms', '--peer-timeout', '2s'], async (srv, s) => {
    const a = s.connect(srv.url, { transports: ['websocket'] });
    const created = await a.timeout(T).emitWithAck('session:create', { name: 'Ana' });
    const { roomCode } = created.data;
    // A raw long-polling client joins, then sends and fetches nothing more.
    const base = `${srv.url}/socket.io/?EIO=4&transport=polling`;
    const sid = JSON.parse((await (await fetch(base)).text()).slice(1)).sid;
    const url = `${base}&sid=${sid}`;
    await fetch(url, { method: 'POST', body: '40' });
    await pollUntil(url, /40\{"sid"/);
    const joined = nextData(a, 'session:user-joined');
    await fetch(url, { method: 'POST', body: `42${JSON.stringify(['session:join', { roomCode, name: 'Quiet' }])}` });
    const { user } = await joined;
    const started = Date.now();
    const away = await nextData(a, 'session:user-away', 10_000);
    assert.equal(away.userId, user.id);
    // Generous bound on a loaded machine: the timeout plus a ping interval, and slack.
    assert.ok(Date.now() - started < 8_000, `away after ${Date.now() - started} ms`);
  });
});
