// webtransport.test.mjs: WebTransport's availability in Chromium.
//
// The managed self-signed certificate: the server makes
// certificates of 8 s (`--dev-cert-lifetime`; 13 days by default): the next one's hash is
// announced in /connect 5 s in and served from 6 s. A page that connected over
// WebTransport before the switch keeps playing; a page that comes after it connects over
// WebTransport with the hash /connect advertises then.
//
// A server without UDP (`--wt-addr off`, as on Railway): /connect offers no WebTransport
// and the page goes straight to the WebSocket, without trying WebTransport at all.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createSession, joinSession, transportOf, useStage, waitForNames } from './harness.mjs';

/** The hashes the server's /connect lists now. */
async function advertised(server) {
  const info = await (await fetch(`${server.baseUrl}/connect`)).json();
  return info.webtransport.certificateHashes.map((h) => h.value);
}

describe('managed certificates in Chromium', () => {
  const stage = useStage({ extraArgs: ['--dev-cert-lifetime', '8s'], logName: 'rotation.log' });

  test('a page from before a rotation keeps playing and one from after connects with the new hash', async () => {
    const [first] = await advertised(stage.server);
    const ana = await stage.player();
    const code = await createSession(ana.page, { name: 'Ana' });
    assert.equal(await transportOf(ana.page), 'webtransport');

    // Wait (bounded) until the next certificate is the one served and listed alone.
    const deadline = Date.now() + 15_000;
    let hashes = await advertised(stage.server);
    while (hashes.length !== 1 || hashes[0] === first) {
      assert.ok(Date.now() < deadline, `no rotation: ${JSON.stringify(hashes)}`);
      await new Promise((r) => setTimeout(r, 100));
      hashes = await advertised(stage.server);
    }

    const ben = await stage.player();
    await joinSession(ben.page, { name: 'Ben', roomCode: code });
    assert.equal(await transportOf(ben.page), 'webtransport', 'the new hash is accepted');
    await waitForNames(ana.page, ['Ana', 'Ben']);
    assert.equal(await transportOf(ana.page), 'webtransport', 'the old session carries on');
    assert.deepEqual([...ana.errors, ...ben.errors], []);
  });
});

describe('a server without WebTransport in Chromium', () => {
  const stage = useStage({ extraArgs: ['--wt-addr', 'off'], logName: 'wt-off.log' });

  test('the page goes straight to the WebSocket and never tries WebTransport', async () => {
    const info = await (await fetch(`${stage.server.baseUrl}/connect`)).json();
    assert.equal(info.webtransport, null);
    // Counts every WebTransport the page makes.
    const initScript = () => {
      window.__webTransports = 0;
      const Real = window.WebTransport;
      if (Real) {
        window.WebTransport = function (...args) {
          window.__webTransports += 1;
          return new Real(...args);
        };
      }
    };
    const ana = await stage.player({ initScript });
    const code = await createSession(ana.page, { name: 'Ana' });
    assert.match(code, /^[0-9A-Z]{6}$/);
    assert.equal(await transportOf(ana.page), 'websocket');
    assert.equal(await ana.page.evaluate(() => window.__webTransports), 0);
    assert.deepEqual(ana.errors, []);
  });
});
