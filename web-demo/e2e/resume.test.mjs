// resume.test.mjs: seats that survive the network (docs/protocol.md §6), in
// Chromium against the real jam-server. Ana plays straight to the server over
// WebTransport; Ben's page reaches it over WebSocket through a TCP relay
// (harness.mjs's TcpRelay) that can go dark without closing anything, or cut
// every connection. The tests run in order and share one room: a silent link
// shown offline, another player dropping out and coming back, a reload, and a
// Leave.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  TIMEOUT,
  TcpRelay,
  createSession,
  identities,
  joinSession,
  leaveSession,
  participants,
  recordNotes,
  recordedNotes,
  relayWsUrl,
  remoteNoteCount,
  screenshot,
  stats,
  throughRelay,
  transportOf,
  useStage,
  waitForNames,
  waitForRemoteNotes,
  waitForStatus,
} from './harness.mjs';

/** The page must show a silent link as offline within this long (its heartbeat's promise). */
const OFFLINE_WITHIN_MS = 5000;

describe('seats that survive the network, in Chromium', { timeout: 180_000 }, () => {
  const stage = useStage({ logName: 'server-resume.log', relay: (server) => TcpRelay.start(server.httpPort) });
  let ana; // WebTransport, straight to the server; hosts
  let ben; // WebSocket through the relay
  let roomCode;
  let seats; // name -> { id, hue } as first seen

  /** Waits until `page` holds its seat on a live link again, after `resumes` resumes. */
  function waitForResume(page, resumes) {
    return page.waitForFunction(
      (n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected',
      resumes,
      { timeout: TIMEOUT.reconnect },
    );
  }

  test('two players, one of them behind a relay', async () => {
    ana = await stage.player();
    assert.equal(await transportOf(ana.page), 'webtransport');
    roomCode = await createSession(ana.page, { name: 'Ana', instrument: 'piano' });

    ben = await stage.player({
      query: `/?room=${roomCode}&transport=websocket`,
      rewriteConnect: throughRelay(stage.relay),
    });
    assert.equal(await transportOf(ben.page), 'websocket');
    assert.equal(await ben.page.evaluate(() => window.jam.client.connectInfo.websocket.url), relayWsUrl(stage.relay));
    await joinSession(ben.page, { name: 'Ben', instrument: 'synth' });
    await waitForNames(ana.page, ['Ana', 'Ben']);
    await waitForNames(ben.page, ['Ana', 'Ben']);
    seats = await identities(ana.page);
    assert.deepEqual(await identities(ben.page), seats);

    await recordNotes(ana.page);
    await ben.page.keyboard.press('a');
    await waitForRemoteNotes(ana.page, 1);
  });

  test('a link that goes dark is shown offline within 5 s; notes played then are not counted as sent', async (t) => {
    // The server has vouched for the note played so far (a ping after it was answered).
    await ben.page.locator('[data-testid="local-note-count"][data-unconfirmed="0"]').waitFor();
    const before = await stats(ben.page);
    const sentShown = await ben.page.getByTestId('local-note-count').textContent();
    assert.equal(sentShown, '1');
    assert.ok(await ben.page.getByTestId('unsent-note-count').isHidden());

    stage.relay.goDark();
    const darkAt = Date.now();
    // A note in the first moment of the dead link (F4): it goes out into the
    // dark, counted as sent until the page finds the link dead, then as lost.
    await ben.page.keyboard.press('f');
    assert.equal(await ben.page.getByTestId('local-note-count').textContent(), '2');
    await ben.page.locator('[data-testid="status"][data-offline="true"]').waitFor({ timeout: OFFLINE_WITHIN_MS });
    const tookMs = Date.now() - darkAt;
    assert.ok(tookMs < OFFLINE_WITHIN_MS, `offline shown after ${tookMs} ms`);
    t.diagnostic(`offline shown ${tookMs} ms after the link went dark`);
    await ben.page.getByTestId('session-banner').filter({ hasText: /offline — your notes are not reaching the room/i }).waitFor();
    assert.match(await ben.page.getByTestId('status-text').textContent(), /offline/i);
    assert.ok((await stats(ben.page)).heartbeatTimeouts > before.heartbeatTimeouts, 'the heartbeat noticed, not the socket');
    await ben.page.locator('[data-testid="participant"][data-you="true"]', { hasText: 'offline' }).waitFor();

    assert.equal(await ben.page.getByTestId('local-note-count').textContent(), sentShown, 'the note played into the dead link is not counted as sent');
    assert.equal(await ben.page.getByTestId('unsent-note-count').textContent(), '1');
    // Three notes while offline (G4 A4 B4): they sound here, but reach nobody and count as not sent.
    for (const key of ['g', 'h', 'j']) await ben.page.keyboard.press(key);
    assert.equal(await ben.page.getByTestId('local-note-count').textContent(), sentShown);
    assert.equal(await ben.page.getByTestId('unsent-note-count').textContent(), '4');
    assert.ok(await ben.page.getByTestId('unsent-note-count').isVisible());
    const during = await stats(ben.page);
    assert.equal(during.broadcastsSent, before.broadcastsSent + 2, 'only the note played before the link was found dead (its on and off) went out');
    await screenshot(ben.page, 'offline-link-dark.png');

    stage.relay.restore();
    await waitForResume(ben.page, before.resumes);
    await ben.page.locator('[data-testid="status"][data-offline="false"]').waitFor();
    assert.ok(await ben.page.getByTestId('session-banner').isHidden());
    assert.ok(await ben.page.getByTestId('session-ended').isHidden());
    assert.equal(await ben.page.evaluate(() => window.jam.client.room.userId), seats.Ben.id, 'the same seat');
    await waitForStatus(ana.page, 'Ben', 'active');
    assert.deepEqual(await identities(ana.page), seats);
    assert.deepEqual(await identities(ben.page), seats);

    // A note after the link is back arrives; the ones played offline never did.
    const heard = await remoteNoteCount(ana.page);
    await ben.page.keyboard.press('k'); // C5
    await waitForRemoteNotes(ana.page, heard + 1);
    const fromBen = (await recordedNotes(ana.page)).filter((n) => n.payload.type === 'on').map((n) => n.payload.note);
    assert.deepEqual(fromBen, [60, 72]);
    assert.equal(await ben.page.getByTestId('local-note-count').textContent(), '2');
  });

  test('another player who drops out is greyed "reconnecting…", their held notes stop at once, and they come back active', async () => {
    // Ben holds A4; Ana sees it lit in his colour.
    await ben.page.keyboard.down('h');
    await ana.page.locator('[data-testid="key-69"].remote').waitFor();
    const resumes = (await stats(ben.page)).resumes;

    stage.relay.cut(); // both ends see the connection close: the server holds Ben's seat as away
    await waitForStatus(ana.page, 'Ben', 'away');
    const row = (await participants(ana.page)).find((p) => p.name === 'Ben');
    assert.equal(row.id, seats.Ben.id);
    assert.equal(row.hue, seats.Ben.hue);
    assert.match(row.text, /reconnecting…/);
    // Released at once, not after the 8 s cut-off for a lost "off".
    await ana.page.locator('[data-testid="key-69"]:not(.remote)').waitFor({ timeout: 2000 });
    await screenshot(ana.page, 'other-player-away.png');
    await ben.page.keyboard.up('h');

    stage.relay.restore();
    await waitForResume(ben.page, resumes);
    await waitForStatus(ana.page, 'Ben', 'active');
    assert.deepEqual(await identities(ana.page), seats, 'the same id and colour');
    assert.deepEqual(await identities(ben.page), seats);
    await ana.page.locator('[data-testid="participant"][data-name="Ana"][data-host="true"]').waitFor();
  });

  test('a reload takes the same seat back', async () => {
    const stored = await ben.page.evaluate(() => JSON.parse(sessionStorage.getItem('jam.seat')));
    assert.equal(stored.roomCode, roomCode);
    assert.equal(stored.userId, seats.Ben.id);
    await ana.page.evaluate((id) => {
      window.__backAfterReload = false;
      window.jam.client.on('user-back', (d) => {
        if (d.userId === id) window.__backAfterReload = true;
      });
    }, seats.Ben.id);

    await ben.page.reload();
    await ben.page.getByTestId('session').waitFor({ timeout: TIMEOUT.reconnect });
    await ben.page.waitForFunction(() => window.jam.client.state === 'connected', null, { timeout: TIMEOUT.reconnect });
    assert.equal(await ben.page.getByTestId('room-code').textContent(), roomCode);
    assert.equal(await ben.page.evaluate(() => window.jam.client.room.userId), seats.Ben.id);
    assert.equal((await stats(ben.page)).resumes, 1, 'resumed, not joined');
    await ana.page.waitForFunction(() => window.__backAfterReload === true, null, { timeout: TIMEOUT.ui });
    await waitForNames(ana.page, ['Ana', 'Ben']);
    await waitForNames(ben.page, ['Ana', 'Ben']);
    assert.deepEqual(await identities(ben.page), seats);

    const heard = await remoteNoteCount(ana.page);
    await ben.page.keyboard.press('a');
    await waitForRemoteNotes(ana.page, heard + 1);
  });

  test('Leave frees the seat at once and forgets it', async () => {
    await leaveSession(ben.page);
    // Well inside the 30 s resume window: this was a leave, not a lost connection.
    await waitForNames(ana.page, ['Ana'], 5000);
    assert.equal(await ben.page.evaluate(() => sessionStorage.getItem('jam.seat')), null);

    await ben.page.reload();
    await ben.page.waitForFunction(() => window.jam.client.state === 'connected', null, { timeout: TIMEOUT.ui });
    assert.ok(await ben.page.getByTestId('lobby').isVisible(), 'a reload after leaving stays in the lobby');
    assert.equal(await ben.page.evaluate(() => window.jam.client.room), null);
  });

  test('no page threw an uncaught error', () => {
    const errors = stage.players.flatMap((p) => p.errors.map((e) => e.stack || String(e)));
    assert.deepEqual(errors, []);
  });
});
