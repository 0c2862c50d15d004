// jam.test.mjs: the JamSession page against the real jam-server, in Chromium.
//
// The first suite shares one server and one browser and runs in order: it
// follows a jam from the first join through closed pages, dropped transports
// and a server restart (all of which keep the seats), to a restart that loses
// the resume key (the one case where the session ends). The second starts a
// server with tiny limits (room size, send rate). Run with `node --test` from
// this folder (or ./run.sh, which also builds the server).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import {
  TIMEOUT,
  createSession,
  identities,
  joinSession,
  leaveSession,
  participants,
  recordNotes,
  recordedNotes,
  remoteNoteCount,
  screenshot,
  stats,
  submitJoin,
  transportOf,
  useStage,
  waitForNames,
  waitForRemoteNotes,
  waitForStatus,
} from './harness.mjs';

/** The resume window of the first suite's server: short, so a closed page's seat goes within the test. */
const RESUME_WINDOW_S = 10;

describe('JamSession in Chromium', { timeout: 240_000 }, () => {
  const stage = useStage({ extraArgs: ['--resume-window', `${RESUME_WINDOW_S}s`] });
  const { players } = stage;
  const player = (opts) => stage.player(opts);
  let ana; // WebTransport, creates the room
  let ben; // WebSocket, forced by the share link's ?transport=websocket
  let cleo; // no WebTransport in her browser at all
  let roomCode;

  test('GET /connect answers as docs/protocol.md §1 shows', async () => {
    const res = await fetch(`${stage.server.baseUrl}/connect`);
    assert.equal(res.status, 200);
    const info = await res.json();
    assert.equal(info.protocol, 1);
    assert.equal(info.websocket.url, `ws://127.0.0.1:${stage.server.httpPort}/ws`);
    assert.equal(info.webtransport.url, `https://127.0.0.1:${stage.server.wtPort}/jam`);
    assert.equal(info.webtransport.certificateHashes.length, 1);
    assert.equal(info.webtransport.certificateHashes[0].algorithm, 'sha-256');
    assert.match(info.webtransport.certificateHashes[0].value, /^[0-9a-f]{64}$/);
    for (const feature of ['resume', 'clock']) assert.ok(info.features.includes(feature), `features has ${feature}`);
  });

  test('a WebTransport host and a WebSocket guest see each other', async () => {
    ana = await player();
    assert.equal(await transportOf(ana.page), 'webtransport', 'auto mode picks WebTransport when it works');
    await assert.doesNotReject(ana.page.getByTestId('transport').filter({ hasText: 'WebTransport' }).waitFor());

    roomCode = await createSession(ana.page, { name: 'Ana', instrument: 'piano' });
    const link = await ana.page.getByTestId('share-link').inputValue();
    assert.equal(new URL(link).search, `?room=${roomCode}`);

    const shareUrl = new URL(link);
    ben = await player({
      query: `${shareUrl.pathname}${shareUrl.search}&transport=websocket`,
      // Ben has a (fake) MIDI keyboard plugged in.
      initScript: () => {
        const input = { id: 'fake-1', name: 'Test Keys 49', onmidimessage: null };
        window.__midiInput = input;
        Object.defineProperty(navigator, 'requestMIDIAccess', {
          configurable: true,
          value: async () => ({ inputs: new Map([[input.id, input]]), outputs: new Map(), onstatechange: null }),
        });
      },
    });
    assert.equal(await transportOf(ben.page), 'websocket');
    await ben.page.getByTestId('invite').waitFor();
    assert.equal(await ben.page.getByTestId('room-code-input').inputValue(), roomCode, 'the share link fills in the code');
    await screenshot(ben.page, 'lobby-invited.png');
    await joinSession(ben.page, { name: 'Ben', instrument: 'synth' });

    await waitForNames(ana.page, ['Ana', 'Ben']);
    await waitForNames(ben.page, ['Ana', 'Ben']);

    const seenByAna = await participants(ana.page);
    const anaRow = seenByAna.find((p) => p.name === 'Ana');
    const benRow = seenByAna.find((p) => p.name === 'Ben');
    assert.ok(anaRow.you && anaRow.host, 'Ana is marked as herself and host');
    assert.ok(!benRow.you && !benRow.host);
    assert.match(benRow.text, /Synth/);
    const seenByBen = await participants(ben.page);
    assert.ok(seenByBen.find((p) => p.name === 'Ben').you);
    assert.ok(seenByBen.find((p) => p.name === 'Ana').host);
  });

  test('notes go both ways, and the WebTransport host sends them as datagrams', async () => {
    await recordNotes(ben.page);
    await recordNotes(ana.page);
    await ben.page.evaluate(() => {
      window.__chats = [];
      window.jam.client.on('event:broadcast', (d) => {
        if (d.eventName === 'chat') window.__chats.push(d.payload.text);
      });
    });
    // The client's counters and the page's vouching pings, read together in one turn of
    // the page's event loop: a ping sent between two separate reads would count in one and
    // not the other.
    const counts = (page) =>
      page.evaluate(() => ({
        ...window.jam.client.stats,
        confirmPings: window.jam.parts.voices.trace.confirmPings,
      }));
    const before = await counts(ana.page);

    // Ana: three notes from the computer keyboard (A S D = C4 D4 E4), two by clicking keys.
    for (const key of ['a', 's', 'd']) await ana.page.keyboard.press(key);
    await ana.page.getByTestId('key-65').click();
    await ana.page.getByTestId('key-67').click();
    await waitForRemoteNotes(ben.page, 5);
    assert.equal(await ana.page.getByTestId('local-note-count').textContent(), '5');

    const after = await counts(ana.page);
    const sent = after.datagramsSent - before.datagramsSent;
    // Note-ons go as datagrams (fast); note-offs on the control stream (a lost
    // "off" would leave the note hanging on every other page).
    assert.equal(sent, 5, `5 notes on went as datagrams (got ${sent})`);
    const offs = await ana.page.evaluate(() => window.jam.parts.voices.trace.sent.filter((x) => x.type === 'off').map((x) => x.path));
    assert.deepEqual(offs, ['stream', 'stream', 'stream', 'stream', 'stream'], 'their 5 offs went on the control stream');
    // Beside them on the stream only the pings that ask the server to vouch for the notes.
    const pings = after.confirmPings - before.confirmPings;
    assert.equal(after.streamSent - before.streamSent, 5 + pings);

    const heard = (await recordedNotes(ben.page)).filter((n) => n.payload.type === 'on');
    assert.deepEqual(
      heard.map((n) => n.payload.note).sort(),
      [60, 62, 64, 65, 67],
    );
    // `at`: when Ana played it, on the room clock (before the server got it).
    const { at, ...rest } = heard[0].payload;
    assert.deepEqual(rest, { type: 'on', note: 60, velocity: 100, instrument: 'piano' });
    assert.ok(typeof at === 'number' && at <= heard[0].serverTime + 5 && at > heard[0].serverTime - 1000, `at ${at}, serverTime ${heard[0].serverTime}`);
    const anaId = await ana.page.evaluate(() => window.jam.client.room.userId);
    assert.ok(heard.every((n) => n.senderId === anaId));

    // A held note lights the key on the other page, and releasing it clears it.
    await ana.page.keyboard.down('h'); // A4 = 69
    await ben.page.locator('[data-testid="key-69"].remote').waitFor();
    await ana.page.keyboard.up('h');
    await ben.page.locator('[data-testid="key-69"]:not(.remote)').waitFor();

    // Ben plays back, by click and by keyboard; Ana hears him with his instrument.
    const anaHeard = await remoteNoteCount(ana.page);
    await ben.page.getByTestId('key-72').click();
    await ben.page.keyboard.press('x'); // octave up
    await ben.page.keyboard.press('a'); // C5 = 72
    await ben.page.keyboard.press('z');
    await waitForRemoteNotes(ana.page, anaHeard + 2);
    // ... and from his MIDI keyboard, velocity included.
    await ben.page.getByTestId('midi-button').click();
    await ben.page.getByTestId('midi-status').filter({ hasText: 'Test Keys 49' }).waitFor();
    await ben.page.evaluate(() => {
      window.__midiInput.onmidimessage({ data: new Uint8Array([0x90, 64, 90]) });
      window.__midiInput.onmidimessage({ data: new Uint8Array([0x80, 64, 0]) });
    });
    await waitForRemoteNotes(ana.page, anaHeard + 3);
    const fromBen = (await recordedNotes(ana.page)).filter((n) => n.payload.type === 'on');
    assert.deepEqual(
      fromBen.map((n) => [n.payload.note, n.payload.velocity, n.payload.instrument]),
      [[72, 100, 'synth'], [72, 100, 'synth'], [64, 90, 'synth']],
    );
    assert.ok(fromBen.every((n) => n.channel === 'stream'), 'a WebSocket sender reaches WebTransport receivers on the control stream');

    // An event too large for one datagram goes on the control stream (Chromium would drop it
    // silently), and so does one sent with { reliable: true }.
    const paths = await ana.page.evaluate(() => {
      const c = window.jam.client;
      return {
        max: c._conn.maxDatagramSize,
        big: c.broadcast('chat', { text: 'x'.repeat(1500) }),
        reliable: c.broadcast('chat', { text: 'hello' }, { reliable: true }),
        small: c.broadcast('chat', { text: 'hi' }),
      };
    });
    assert.ok(paths.max > 1000 && paths.max < 1500, `datagram limit ${paths.max}`);
    assert.deepEqual([paths.big, paths.reliable, paths.small], ['stream', 'stream', 'datagram']);
    await ben.page.waitForFunction(() => window.__chats.length >= 3, null, { timeout: TIMEOUT.ui });
    const chats = await ben.page.evaluate(() => window.__chats);
    // Datagrams and the stream are separate paths: no order between them.
    assert.deepEqual(chats.map((c) => c.length).sort((a, b) => a - b), [2, 5, 1500]);
    assert.equal((await stats(ana.page)).datagramTooLarge, 1);

    const benRow = (await participants(ana.page)).find((p) => p.name === 'Ben');
    assert.ok(benRow.notes >= 3, 'the list counts (and flashes) who played');

    // Mid-jam screenshots: Ana holds a chord, Ben sees it.
    await ana.page.keyboard.down('a');
    await ana.page.keyboard.down('d');
    await ana.page.keyboard.down('g');
    await ben.page.locator('[data-testid="key-67"].remote').waitFor();
    await screenshot(ana.page, 'jam-ana-webtransport.png');
    await screenshot(ben.page, 'jam-ben-websocket.png');
    for (const key of ['a', 'd', 'g']) await ana.page.keyboard.up(key);
    await ben.page.locator('[data-testid="key-67"]:not(.remote)').waitFor();
  });

  test('the room clock in Chromium: datagram pings over WebTransport, the estimate within 1 ms (or its bound); latency and tempo reach the page', async (t) => {
    const clockOf = (page) =>
      page.evaluate(async () => {
        const c = window.jam.client;
        const deadline = Date.now() + 5000;
        while (c.clock.sampleCount < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        const { offsetMs, errorMs, rttMs, sampleCount } = c.clock;
        return { transport: c.transport, offsetMs, errorMs, rttMs, sampleCount, ...c.stats };
      });
    const [a, b] = [await clockOf(ana.page), await clockOf(ben.page)];
    for (const [who, c] of [['Ana', a], ['Ben', b]]) {
      t.diagnostic(`${who} (${c.transport}): offset ${c.offsetMs.toFixed(3)} ms, bound ±${c.errorMs.toFixed(3)} ms, ${c.sampleCount} samples, ${c.clockDatagramsSent} as datagrams`);
      assert.ok(c.sampleCount >= 8, `${who}: ${c.sampleCount} samples`);
      // One machine: the true offset is 0 (a browser's clock may round to 0.1 ms,
      // and a datagram round trip in Chromium can take a few ms).
      // The bound is the estimator's heuristic (half the best round trip) and CI's
      // machine may be loaded: allow twice it, and say the figures either way.
      assert.ok(Math.abs(c.offsetMs) <= 2 * Math.max(1, c.errorMs), `${who}: offset ${c.offsetMs} ms, bound ±${c.errorMs} ms`);
    }
    assert.equal(a.transport, 'webtransport');
    assert.ok(a.clockDatagramsSent >= 8, 'WebTransport clock pings go as datagrams');
    assert.ok(a.heartbeatsSent >= 1, 'the heartbeat goes on the control stream beside them');
    assert.equal(b.clockDatagramsSent, 0);

    // The server's round trips reach the participant list; a note then carries the delay.
    await ben.page.waitForFunction(() => window.jam.client.room.participants.every((p) => p.rttMs !== null), null, { timeout: TIMEOUT.ui });
    const heardBefore = (await recordedNotes(ben.page)).length;
    await ana.page.keyboard.press('f');
    await ben.page.waitForFunction((n) => window.__notes.length > n, heardBefore);
    const note = (await recordedNotes(ben.page))[heardBefore];
    const expected = await ben.page.evaluate((id) => window.jam.client.delayMs(id), note.senderId);
    assert.equal(typeof note.serverTime, 'number');
    assert.equal(typeof note.delayMs, 'number');
    // A session:latency may land between the note and this look: close, not equal. How
    // fast loopback is on a loaded machine is no test's business (the bench measures it).
    assert.ok(Number.isFinite(note.delayMs) && note.delayMs >= 0, `delayMs ${note.delayMs}`);
    assert.ok(Math.abs(note.delayMs - expected) <= 10, `delayMs ${note.delayMs}, now ${expected}`);

    // A tempo set on one page is announced on the other, for the same bar line.
    await ben.page.evaluate(() => {
      window.__pending = [];
      window.jam.client.on('tempo', (s) => s.pending && window.__pending.push(s.pending));
    });
    const set = await ana.page.evaluate(() => window.jam.client.setTempo(100, 3));
    await ben.page.waitForFunction(() => window.__pending.length > 0);
    assert.deepEqual(await ben.page.evaluate(() => window.__pending[0]), set);
    assert.deepEqual([set.bpm, set.beatsPerBar], [100, 3]);
  });

  test('a browser without WebTransport falls back to WebSocket and plays along', async () => {
    const link = await ana.page.getByTestId('share-link').inputValue();
    cleo = await player({
      query: new URL(link).pathname + new URL(link).search,
      initScript: () => {
        delete window.WebTransport;
      },
      viewport: { width: 390, height: 844 }, // phone width
    });
    assert.equal(await cleo.page.evaluate(() => typeof window.WebTransport), 'undefined');
    assert.equal(await transportOf(cleo.page), 'websocket');
    await joinSession(cleo.page, { name: 'Cleo', instrument: 'drums' });
    await waitForNames(ana.page, ['Ana', 'Ben', 'Cleo']);
    await waitForNames(cleo.page, ['Ana', 'Ben', 'Cleo']);
    await cleo.page.getByTestId('drum-pads').waitFor();

    const anaHeard = await remoteNoteCount(ana.page);
    const benHeard = await remoteNoteCount(ben.page);
    await cleo.page.keyboard.press('a'); // kick
    await cleo.page.getByTestId('pad-snare').click();
    await waitForRemoteNotes(ana.page, anaHeard + 2);
    await waitForRemoteNotes(ben.page, benHeard + 2);

    const cleoHeard = await remoteNoteCount(cleo.page);
    await ana.page.keyboard.press('f');
    await ben.page.getByTestId('key-60').click();
    await waitForRemoteNotes(cleo.page, cleoHeard + 2);
    await screenshot(cleo.page, 'jam-cleo-phone-fallback.png');
  });

  test('a WebTransport handshake that fails (wrong certificate hash) falls back to WebSocket', async () => {
    const context = await stage.browser.newContext();
    players.push({ context, errors: [] });
    const page = await context.newPage();
    await page.route('**/connect', async (route) => {
      const res = await route.fetch();
      const info = await res.json();
      info.webtransport.certificateHashes[0].value = '00'.repeat(32);
      await route.fulfill({ response: res, json: info });
    });
    await page.goto(`${stage.server.baseUrl}/`);
    await page.waitForFunction(() => window.jam.client.state === 'connected', null, { timeout: TIMEOUT.ui });
    assert.equal(await transportOf(page), 'websocket');
    assert.equal(await page.evaluate(() => window.jam.client.connectInfo.webtransport.certificateHashes[0].value), '00'.repeat(32));
    await context.close();
  });

  test('an unknown room and a duplicate name show plain errors', async () => {
    const dan = await player();
    await submitJoin(dan.page, { name: 'Dan', roomCode: 'ZZZZZZ' });
    await dan.page.getByTestId('error').waitFor();
    assert.match(await dan.page.getByTestId('error-text').textContent(), /no session with that code/i);
    await screenshot(dan.page, 'error-room-not-found.png');
    assert.ok(await dan.page.getByTestId('lobby').isVisible(), 'still in the lobby');

    await submitJoin(dan.page, { name: 'ana', roomCode: roomCode.toLowerCase() });
    await dan.page.getByTestId('error-text').filter({ hasText: /already uses that name/i }).waitFor();
    assert.ok(await dan.page.getByTestId('lobby').isVisible());
    await waitForNames(ana.page, ['Ana', 'Ben', 'Cleo']);

    // The connection stays usable after errors: Dan joins under his own name, over
    // WebTransport, and Ana's notes reach him as datagrams.
    assert.equal(await transportOf(dan.page), 'webtransport');
    await dan.page.getByTestId('error-text').filter({ hasText: /already uses/ }).waitFor();
    await joinSession(dan.page, { name: 'Dan', instrument: 'bass' });
    await waitForNames(ana.page, ['Ana', 'Ben', 'Cleo', 'Dan']);
    assert.ok(await dan.page.getByTestId('error').isHidden(), 'a successful join clears the error');
    await recordNotes(dan.page);
    await ana.page.keyboard.press('j');
    await waitForRemoteNotes(dan.page, 1);
    const [heard] = await recordedNotes(dan.page);
    assert.equal(heard.payload.note, 71);
    assert.equal(heard.channel, 'datagram', 'WebTransport to WebTransport travels as datagrams end to end');
    assert.ok((await stats(dan.page)).datagramsReceived >= 1);

    // Leave frees the seat at once (no resume window), and forgets it.
    await leaveSession(dan.page);
    await waitForNames(ana.page, ['Ana', 'Ben', 'Cleo'], RESUME_WINDOW_S * 1000 / 2);
    assert.equal(await dan.page.evaluate(() => sessionStorage.getItem('jam.seat')), null);
    await dan.context.close();
  });

  test('a closed page greys its player as reconnecting…, and the seat goes after the resume window', async () => {
    const benId = (await identities(ana.page)).Ben.id;
    await ben.context.close();
    for (const p of [ana, cleo]) {
      await waitForStatus(p.page, 'Ben', 'away');
      const row = (await participants(p.page)).find((r) => r.name === 'Ben');
      assert.equal(row.id, benId);
      assert.match(row.text, /reconnecting…/);
    }
    await screenshot(ana.page, 'player-away.png');
    for (const p of [ana, cleo]) await waitForNames(p.page, ['Ana', 'Cleo'], TIMEOUT.reconnect);
  });

  test('a dropped transport resumes the same seat: same room, ids, colours and host', async () => {
    const seats = await identities(ana.page);
    assert.deepEqual(await identities(cleo.page), seats, 'both pages agree on ids and colours');
    for (const [who, other, name] of [
      [ana, cleo, 'Ana'],
      [cleo, ana, 'Cleo'],
    ]) {
      const myId = seats[name].id;
      const resumesBefore = (await stats(who.page)).resumes;
      const transport = await transportOf(who.page);
      await other.page.evaluate((id) => {
        window.__back = false;
        window.__left = false;
        window.jam.client.on('user-back', (d) => {
          if (d.userId === id) window.__back = true;
        });
        window.jam.client.on('session:user-left', (d) => {
          if (d.userId === id) window.__left = true;
        });
      }, myId);

      await who.page.evaluate(() => window.jam.client[Symbol.for('jam-client.dropTransport')]());
      await who.page.waitForFunction(
        (n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected',
        resumesBefore,
        { timeout: TIMEOUT.reconnect },
      );
      assert.equal(await transportOf(who.page), transport, 'the same transport comes back');
      assert.equal(await who.page.getByTestId('room-code').textContent(), roomCode);
      assert.ok(await who.page.getByTestId('session').isVisible());
      assert.ok(await who.page.getByTestId('session-ended').isHidden(), 'no "session ended"');
      assert.equal(await who.page.evaluate(() => window.jam.client.room.userId), myId, 'a resume keeps the seat');
      assert.equal((await stats(who.page)).rejoins, 0, 'no fresh join');

      await other.page.waitForFunction(() => window.__back === true, null, { timeout: TIMEOUT.ui });
      await waitForStatus(other.page, name, 'active');
      for (const p of [who, other]) {
        await waitForNames(p.page, ['Ana', 'Cleo']);
        assert.deepEqual(await identities(p.page), seats, 'same ids and colours');
        // The host role stayed with Ana all along.
        await p.page.locator('[data-testid="participant"][data-name="Ana"][data-host="true"]').waitFor();
      }
      assert.equal(await other.page.evaluate(() => window.__left), false, 'the others never saw a leave');

      // And the jam goes on.
      const heard = await remoteNoteCount(other.page);
      await who.page.keyboard.press('a');
      await waitForRemoteNotes(other.page, heard + 1);
    }
  });

  test('after a server restart both pages resume into the same room with the same players', async () => {
    const seats = await identities(ana.page);
    const resumes = [await stats(ana.page), await stats(cleo.page)].map((st) => st.resumes);
    await stage.server.stop();
    for (const p of [ana, cleo]) {
      await p.page.waitForFunction(() => window.jam.client.state === 'reconnecting', null, { timeout: TIMEOUT.reconnect });
      await p.page.locator('[data-testid="status"][data-offline="true"]').waitFor();
      await p.page.getByTestId('session-banner').filter({ hasText: /offline — your notes are not reaching the room/i }).waitFor();
    }
    await screenshot(ana.page, 'offline.png');
    await stage.server.start();

    for (const [i, p] of [ana, cleo].entries()) {
      await p.page.waitForFunction(
        (n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected',
        resumes[i],
        { timeout: TIMEOUT.reconnect },
      );
    }
    for (const p of [ana, cleo]) {
      await waitForNames(p.page, ['Ana', 'Cleo']);
      assert.ok(await p.page.getByTestId('session').isVisible());
      assert.ok(await p.page.getByTestId('session-ended').isHidden(), 'no "session ended"');
      assert.equal(await p.page.getByTestId('room-code').textContent(), roomCode);
      assert.deepEqual(await identities(p.page), seats, 'same players, ids and colours');
      await waitForStatus(p.page, 'Ana', 'active');
      await waitForStatus(p.page, 'Cleo', 'active');
      // The earliest-joined seat present hosts the recreated room.
      await p.page.locator('[data-testid="participant"][data-name="Ana"][data-host="true"]').waitFor();
      await p.page.locator('[data-testid="status"][data-offline="false"]').waitFor();
      assert.ok(await p.page.getByTestId('session-banner').isHidden());
      assert.equal((await stats(p.page)).rejoins, 0, 'resumed, not joined afresh');
    }
    assert.equal(await transportOf(ana.page), 'webtransport');
    await screenshot(ana.page, 'after-restart-resumed.png');

    const cleoHeard = await remoteNoteCount(cleo.page);
    await ana.page.keyboard.press('s');
    await waitForRemoteNotes(cleo.page, cleoHeard + 1);
    const anaHeard = await remoteNoteCount(ana.page);
    await cleo.page.keyboard.press('a');
    await waitForRemoteNotes(ana.page, anaHeard + 1);
  });

  test('when the seat really cannot come back, the page says the session ended and offers a new one', async () => {
    // A restart that lost the key signing resume tokens and the room store (a
    // new machine): the server refuses every seat (resume_failed), and the
    // fresh join finds no room.
    await stage.server.stop();
    assert.ok(fs.existsSync(stage.server.resumeKeyFile), `the resume key is kept at ${stage.server.resumeKeyFile}`);
    fs.rmSync(stage.server.resumeKeyFile);
    fs.rmSync(stage.server.dataDir, { recursive: true, force: true });
    await stage.server.start();

    for (const p of [ana, cleo]) {
      await p.page.getByTestId('session-ended').waitFor({ timeout: TIMEOUT.reconnect });
      assert.match(await p.page.getByTestId('session-ended-text').textContent(), new RegExp(`${roomCode}.*no longer exists`));
      assert.ok(await p.page.getByTestId('new-session-button').isVisible());
      await p.page.locator('[data-testid="status"][data-state="connected"]').waitFor();
      assert.equal(await p.page.evaluate(() => sessionStorage.getItem('jam.seat')), null, 'the dead seat is forgotten');
    }
    await screenshot(ana.page, 'session-ended.png');
    assert.equal(await transportOf(ana.page), 'webtransport');

    await ana.page.getByTestId('new-session-button').click();
    await ana.page.getByTestId('session').waitFor();
    const fresh = (await ana.page.getByTestId('room-code').textContent()).trim();
    assert.match(fresh, /^[0-9A-Z]{6}$/);
    assert.notEqual(fresh, roomCode);
    await waitForNames(ana.page, ['Ana']);
    await screenshot(ana.page, 'after-restart-new-session.png');

    // Leaving goes back to the lobby, and so does "Back to start".
    await leaveSession(ana.page);
    assert.equal(new URL(ana.page.url()).searchParams.get('room'), null);
    await cleo.page.getByTestId('back-button').click();
    await cleo.page.getByTestId('lobby').waitFor();
  });

  test('from http://localhost the page reaches WebTransport too (dual-stack, ::1)', async () => {
    const eve = await player({ origin: `http://localhost:${stage.server.httpPort}` });
    assert.equal(await transportOf(eve.page), 'webtransport');
    const info = await eve.page.evaluate(() => window.jam.client.connectInfo);
    assert.equal(info.webtransport.url, `https://localhost:${stage.server.wtPort}/jam`);
    await eve.context.close();
  });

  test('no page threw an uncaught error', () => {
    const errors = players.flatMap((p) => p.errors.map((e) => e.stack || String(e)));
    assert.deepEqual(errors, []);
  });
});

describe('JamSession against a small, strict server', { timeout: 120_000 }, () => {
  const stage = useStage({
    extraArgs: ['--max-room-size', '2', '--rate-limit', '1', '--rate-burst', '3'],
    logName: 'server-strict.log',
  });

  test('a full room and a rate limit are explained in plain words', async () => {
    const host = await stage.player();
    const code = await createSession(host.page, { name: 'Host' });
    const second = await stage.player({ query: `/?room=${code}` });
    await joinSession(second.page, { name: 'Second' });
    const third = await stage.player({ query: `/?room=${code}` });
    await submitJoin(third.page, { name: 'Third' });
    await third.page.getByTestId('error-text').filter({ hasText: /session is full/i }).waitFor();
    assert.ok(await third.page.getByTestId('lobby').isVisible());

    // Far more notes than 1 a second with a burst of 3: the server says so (an error
    // without an id, as no request caused it) and the page shows it.
    for (const key of ['a', 's', 'd', 'f', 'g', 'h']) await host.page.keyboard.press(key);
    await host.page.getByTestId('error-text').filter({ hasText: /faster than the server allows/ }).waitFor();
    for (const p of [host, second, third]) assert.deepEqual(p.errors, []);
  });
});
