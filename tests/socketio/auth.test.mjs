// Signing in over Socket.IO (docs/protocol.md §13): the token travels in the same
// message fields as on the other transports, with the same answers. Tokens are HS256,
// signed here with node:crypto.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { T, next, nextData, withServer } from './harness.mjs';

const SECRET = 'the app secret for the Socket.IO tests';
const now = () => Math.floor(Date.now() / 1000);
const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An HS256 JWT for `claims` (ten minutes unless `exp` is given). */
function token(claims) {
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: now() + 600, ...claims })}`;
  const sig = crypto.createHmac('sha256', SECRET).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/** `withServer` with sign-in on, verifying with `SECRET`. */
async function withSignIn(body) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-sio-auth-'));
  const file = path.join(dir, 'secret');
  fs.writeFileSync(file, `${SECRET}\n`);
  try {
    await withServer(['--jwt-secret-file', file], body);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('sign-in over Socket.IO: /connect says so; no token is unauthorized, a valid one creates and joins under its name', async () => {
  await withSignIn(async (srv, s) => {
    const connect = await (await fetch(`${srv.url}/connect`)).json();
    assert.equal(connect.auth, 'required');
    assert.ok(connect.features.includes('auth'));

    const a = s.connect(srv.url, { transports: ['websocket'] });
    const refused = await a.timeout(T).emitWithAck('session:create', { name: 'Ana' });
    assert.equal(refused.event, 'error');
    assert.equal(refused.data.code, 'unauthorized');
    const created = await a.timeout(T).emitWithAck('session:create', {
      name: 'Ana', token: token({ sub: 'app-ana', name: 'Ana Signed' }),
    });
    assert.equal(created.event, 'session:created');
    assert.equal(created.data.participants[0].name, 'Ana Signed');

    const b = s.connect(srv.url);
    const forbidden = await b.timeout(T).emitWithAck('session:join', {
      roomCode: created.data.roomCode, name: 'Ben', token: token({ sub: 'app-ben', rooms: ['ZZZZZZ'] }),
    });
    assert.equal(forbidden.data.code, 'forbidden');
    const joined = await b.timeout(T).emitWithAck('session:join', {
      roomCode: created.data.roomCode, name: 'Ben', token: token({ sub: 'app-ben' }),
    });
    assert.equal(joined.event, 'session:joined');
    assert.ok(!JSON.stringify(joined).includes('app-'), 'no sub is sent');

    // A refresh answers auth:refreshed with the new expiry; another user's is forbidden.
    const exp = now() + 900;
    const refreshed = await b.timeout(T).emitWithAck('auth:refresh', { token: token({ sub: 'app-ben', exp }) });
    assert.deepEqual(refreshed, { event: 'auth:refreshed', data: { exp } });
    const other = await b.timeout(T).emitWithAck('auth:refresh', { token: token({ sub: 'app-ana' }) });
    assert.equal(other.data.code, 'forbidden');
  });
});

test('over Socket.IO a seat whose token runs out gets token_expired, is disconnected and leaves', async () => {
  await withSignIn(async (srv, s) => {
    const a = s.connect(srv.url, { transports: ['websocket'] });
    const created = await a.timeout(T).emitWithAck('session:create', { name: 'Ana', token: token({ sub: 'app-ana' }) });
    const b = s.connect(srv.url, { transports: ['websocket'] });
    // Expired 28 s ago: still inside the 30 s leeway, so the seat lapses about 2 s from now.
    const expired = next(b, 'error', 10_000);
    const gone = next(b, 'disconnect', 10_000);
    const left = nextData(a, 'session:user-left', 10_000);
    const joined = await b.timeout(T).emitWithAck('session:join', {
      roomCode: created.data.roomCode, name: 'Ben', token: token({ sub: 'app-ben', exp: now() - 28 }),
    });
    assert.equal(joined.event, 'session:joined');
    const [error] = await expired;
    assert.equal(error.code, 'token_expired');
    assert.equal((await left).userId, joined.data.userId, 'the seat left, with no resume window');
    assert.equal((await gone)[0], 'io server disconnect');
  });
});
