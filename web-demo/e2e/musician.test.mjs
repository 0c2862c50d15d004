// musician.test.mjs: the page as musicians use it, in Chromium against the
// real jam-server: latency lights, the shared tempo and the metronome (clicks
// of two pages on the same server times, a tempo change on a bar line), the
// mixer (a muted player's notes start no voice), chat over WebTransport and
// WebSocket, notes held past 10 s and released on note-off, on away and on
// leave, seeing the others play (colours, legend, strips), the page's small
// fixes, and the layouts at 1280×800, 390×844 and 844×390 (screenshots in
// target/e2e/). One server and one browser; the tests run in order.

import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  ARTIFACTS,
  TIMEOUT,
  JitterRelay,
  createSession,
  joinSession,
  leaveSession,
  participants,
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

/** Short, so a closed page's seat goes within the test. */
const RESUME_WINDOW_S = 10;
/** The page's own highlight hue (colors.js OWN_HUE): no player colour comes near it. */
const OWN_HUE = 248;

/**
 * In the page: the server time at which each metronome click is heard, worked
 * out independently of the page's scheduler: the audio clock read against
 * `performance` by `getOutputTimestamp()` (median of 15 readings), then the
 * room clock's offset. Returns `{ beat -> { heard, serverTime, accent, bpm } }`.
 */
function heardClicks(page) {
  return page.evaluate(async () => {
    const { synth, metronome } = window.jam.parts;
    const ctx = synth.ctx;
    const deltas = [];
    for (let i = 0; i < 15; i++) {
      const ts = ctx.getOutputTimestamp();
      if (ts.performanceTime > 0) deltas.push(ts.performanceTime / 1000 - ts.contextTime);
      await new Promise((r) => setTimeout(r, 5));
    }
    deltas.sort((a, b) => a - b);
    const delta = deltas[deltas.length >> 1];
    const offset = window.jam.client.clock.offsetMs;
    const out = {};
    for (const c of metronome.clicks) {
      const local = performance.timeOrigin + (c.audioTime + delta) * 1000;
      out[c.beat] = { heard: local + offset, serverTime: c.serverTime, accent: c.accent, bpm: c.bpm, beatsPerBar: c.beatsPerBar };
    }
    return out;
  });
}

/** Waits until the page's metronome has scheduled at least `n` clicks passing `pred`. */
async function waitForClicks(page, n, pred = '() => true', timeout = TIMEOUT.ui) {
  await page.waitForFunction(
    ([want, src]) => {
      // eslint-disable-next-line no-new-func
      const f = new Function(`return (${src})`)();
      return window.jam.parts.metronome.clicks.filter(f).length >= want;
    },
    [n, pred],
    { timeout },
  );
}

const hueDistance = (a, b) => {
  const d = Math.abs(a - b) % 360;
  return Math.min(d, 360 - d);
};

describe('JamSession for musicians', { timeout: 300_000 }, () => {
  const stage = useStage({ extraArgs: ['--resume-window', `${RESUME_WINDOW_S}s`], logName: 'server-musician.log' });
  const player = (opts) => stage.player(opts);
  let ana; // WebTransport, desktop 1280×800, piano
  let ben; // WebSocket, desktop, synth
  let roomCode;
  let anaId;

  test('latency: a graded light and the one-way delay per player; your round trip, graded, on your own row and in the status bar', async () => {
    ana = await player({ viewport: { width: 1280, height: 800 } });
    roomCode = await createSession(ana.page, { name: 'Ana', instrument: 'piano' });
    ben = await player({ query: `/?room=${roomCode}&transport=websocket`, viewport: { width: 1280, height: 800 } });
    await joinSession(ben.page, { name: 'Ben', instrument: 'synth' });
    assert.equal(await transportOf(ana.page), 'webtransport');
    assert.equal(await transportOf(ben.page), 'websocket');
    await waitForNames(ana.page, ['Ana', 'Ben']);
    anaId = await ana.page.evaluate(() => window.jam.client.room.userId);

    for (const [p, other] of [
      [ana, 'Ben'],
      [ben, 'Ana'],
    ]) {
      // Loopback: well inside 25 ms one way, so the light is green.
      const light = p.page.locator(`[data-testid="participant"][data-name="${other}"] [data-testid="latency"]`);
      await p.page.locator(`[data-testid="participant"][data-name="${other}"] [data-testid="latency"][data-grade="good"]`).waitFor({ timeout: TIMEOUT.ui });
      const shown = Number(await light.getAttribute('data-one-way'));
      const id = (await participants(p.page)).find((r) => r.name === other).id;
      const expected = await p.page.evaluate((uid) => window.jam.client.delayMs(uid), id);
      assert.ok(Math.abs(shown - expected) <= 3, `shown ${shown} ms, client says ${expected} ms`);
      assert.match(await light.textContent(), /^\d+ ms$/);
      // The light follows docs/protocol.md §8 grades for the figure it shows.
      const grade = await light.getAttribute('data-grade');
      assert.equal(grade, shown <= 25 ? 'good' : shown <= 50 ? 'playable' : 'hard');
      // Your own row has a light too, graded by your round trip.
      const own = p.page.locator('[data-testid="participant"][data-you="true"] [data-testid="latency"]');
      await p.page.locator('[data-testid="participant"][data-you="true"] [data-testid="latency"][data-grade="good"]').waitFor();
      assert.ok(await own.locator('.light').isVisible(), 'your own light shows');
      assert.match(await own.textContent(), /^\d+ ms$/);
      const mine = p.page.getByTestId('my-latency');
      await mine.waitFor();
      assert.match(await mine.textContent(), /^\d+ ms round trip · in time within [\d.]+ ms$/);
      assert.ok(Number(await mine.getAttribute('data-clock-error')) >= 0);
    }

    // Far away: Eve's WebSocket runs through a relay that holds everything
    // from the server 120 ms, so her round trip is at least that, and she is
    // at least 60 ms from the others one way: a red light on both sides.
    const relay = await JitterRelay.start(stage.server.httpPort, { downMinMs: 120, downMaxMs: 120 });
    try {
      const eve = await player({
        query: `/?room=${roomCode}&transport=websocket`,
        rewriteConnect: throughRelay(relay),
      });
      await joinSession(eve.page, { name: 'Eve', instrument: 'bass' });
      const far = ana.page.locator('[data-testid="participant"][data-name="Eve"] [data-testid="latency"][data-grade="hard"]');
      await far.waitFor({ timeout: 20_000 });
      assert.ok(Number(await far.getAttribute('data-one-way')) >= 60);
      await eve.page.locator('[data-testid="participant"][data-name="Ana"] [data-testid="latency"][data-grade="hard"]').waitFor({ timeout: 20_000 });
      const eveOwn = Number(await eve.page.getByTestId('my-latency').getAttribute('data-rtt'));
      assert.ok(eveOwn >= 120, `Eve's own round trip in her status bar: ${eveOwn} ms`);
      // ... and on her own row, a red light.
      await eve.page.locator('[data-testid="participant"][data-you="true"] [data-testid="latency"][data-grade="hard"]').waitFor({ timeout: 20_000 });
      await screenshot(ana.page, 'musician-latency-lights.png', { fullPage: false });
      await ana.page.locator('.people').screenshot({ path: path.join(ARTIFACTS, 'musician-players-lights.png') });
      await leaveSession(eve.page);
      await waitForNames(ana.page, ['Ana', 'Ben']);
      await eve.context.close();
    } finally {
      await relay.close();
    }
  });

  test('metronome: two pages click on the same server times (within 2 ms), the downbeat accented', async (t) => {
    for (const p of [ana, ben]) {
      await p.page.getByTestId('metronome-toggle').click();
      assert.equal(await p.page.getByTestId('metronome-toggle').getAttribute('aria-pressed'), 'true');
    }
    for (const p of [ana, ben]) await waitForClicks(p.page, 8);
    const [a, b] = [await heardClicks(ana.page), await heardClicks(ben.page)];
    const common = Object.keys(a).filter((beat) => b[beat]);
    assert.ok(common.length >= 5, `common beats: ${common.length}`);
    let worst = 0;
    for (const beat of common) {
      // The beat's server time comes from the same tempo on both pages: equal.
      assert.ok(Math.abs(a[beat].serverTime - b[beat].serverTime) < 1e-6, `beat ${beat}: room times differ`);
      assert.equal(a[beat].accent, b[beat].accent);
      assert.equal(a[beat].accent, Number(beat) % 4 === 0, `beat ${beat}: accent on the downbeat only (room default 4/4 from beat 0)`);
      // When it is heard, read back through each page's own clocks.
      const diff = Math.abs(a[beat].heard - b[beat].heard);
      worst = Math.max(worst, diff);
      assert.ok(diff <= 2, `beat ${beat}: heard at ${a[beat].heard.toFixed(2)} (Ana) and ${b[beat].heard.toFixed(2)} (Ben), ${diff.toFixed(2)} ms apart`);
      for (const [who, c] of [['Ana', a[beat]], ['Ben', b[beat]]]) {
        assert.ok(Math.abs(c.heard - c.serverTime) <= 2, `${who} beat ${beat}: heard ${(c.heard - c.serverTime).toFixed(2)} ms off the room's beat`);
      }
    }
    const beats = common.map(Number).sort((x, y) => x - y);
    for (let i = 1; i < beats.length; i++) {
      if (beats[i] === beats[i - 1] + 1) assert.ok(Math.abs(a[beats[i]].serverTime - a[beats[i - 1]].serverTime - 500) < 1e-6, '120 BPM: 500 ms apart');
    }
    t.diagnostic(`${common.length} common clicks; worst disagreement between the pages ${worst.toFixed(3)} ms`);
  });

  test('a tempo change set on one page lands on a bar line in both, and says who set it', async (t) => {
    const old = await ana.page.evaluate(() => window.jam.client.tempo);
    await ben.page.getByTestId('bpm-input').fill('150');
    await ben.page.getByTestId('bpb-input').selectOption('3');
    await ben.page.getByTestId('tempo-set').click();
    for (const p of [ana, ben]) {
      await p.page.locator('[data-testid="tempo-panel"][data-bpm="150"][data-beats-per-bar="3"]').waitFor({ timeout: TIMEOUT.ui });
    }
    assert.equal(await ana.page.getByTestId('tempo-setby').textContent(), 'set by Ben');
    assert.equal(await ben.page.getByTestId('tempo-setby').textContent(), 'set by you');
    assert.equal(await ana.page.getByTestId('tempo-bpm').textContent(), '150');
    assert.equal(await ana.page.getByTestId('tempo-meter').textContent(), '3/4');
    const tempo = await ana.page.evaluate(() => window.jam.client.tempo);
    assert.deepEqual(await ben.page.evaluate(() => window.jam.client.tempo), tempo);
    const bars = (tempo.originTime - old.originTime) / ((old.beatsPerBar * 60000) / old.bpm);
    assert.ok(Math.abs(bars - Math.round(bars)) < 1e-6, 'the new tempo starts on a bar line of the old');

    for (const p of [ana, ben]) await waitForClicks(p.page, 5, '(c) => c.bpm === 150');
    const [a, b] = [await heardClicks(ana.page), await heardClicks(ben.page)];
    for (const [who, clicks] of [['Ana', a], ['Ben', b]]) {
      const beats = Object.keys(clicks).map(Number).sort((x, y) => x - y);
      const first = beats.find((beat) => clicks[beat].bpm === 150);
      const c = clicks[first];
      assert.ok(Math.abs(c.serverTime - tempo.originTime) < 1e-6, `${who}: the first click at 150 BPM is the change's bar line`);
      assert.equal(first, tempo.originBeat);
      assert.ok(c.accent, `${who}: and it is a downbeat`);
      const before = clicks[first - 1];
      if (before) {
        assert.equal(before.bpm, 120);
        assert.ok(Math.abs(c.serverTime - before.serverTime - 500) < 1e-6, `${who}: the last old beat a whole old beat before`);
      }
      for (const beat of beats.filter((x) => x > first)) {
        assert.ok(Math.abs(clicks[beat].serverTime - clicks[beat - 1].serverTime - 400) < 1e-6, `${who}: 150 BPM is 400 ms a beat`);
        assert.equal(clicks[beat].accent, (beat - first) % 3 === 0, `${who}: 3/4 accents every third beat`);
      }
    }
    const first = tempo.originBeat;
    const diff = Math.abs(a[first].heard - b[first].heard);
    t.diagnostic(`the first bar at 150 BPM: heard ${diff.toFixed(3)} ms apart on the two pages`);
    assert.ok(diff <= 2, `the change's downbeat heard ${diff} ms apart`);
    for (const p of [ana, ben]) await p.page.getByTestId('metronome-toggle').click();
  });

  test('mixer: a muted player\'s notes start no voice; unmuted they do; levels are per player and master', async () => {
    const benId = await ben.page.evaluate(() => window.jam.client.room.userId);
    const row = ben.page.locator('[data-testid="participant"][data-name="Ana"]');
    assert.equal(await ben.page.locator('[data-testid="participant"][data-you="true"] [data-testid="mute-button"]').count(), 0, 'no mute on your own row');
    await row.getByTestId('mute-button').click();
    assert.equal(await row.getByTestId('mute-button').getAttribute('aria-pressed'), 'true');
    const started = () => ben.page.evaluate((id) => window.jam.parts.voices.trace.started.get(id) || 0, anaId);
    const skipped = () => ben.page.evaluate((id) => window.jam.parts.voices.trace.mutedSkipped.get(id) || 0, anaId);
    const [s0, k0, heard0] = [await started(), await skipped(), await remoteNoteCount(ben.page)];
    for (const key of ['a', 's', 'd']) await ana.page.keyboard.press(key);
    await waitForRemoteNotes(ben.page, heard0 + 3);
    assert.equal(await started(), s0, 'muted: no voice started');
    assert.equal(await skipped(), k0 + 3);
    // The notes are still seen (counted and drawn), just not heard.
    assert.equal(await ben.page.evaluate(() => window.jam.client.room.participants.length), 2);

    await row.getByTestId('mute-button').click();
    assert.equal(await row.getByTestId('mute-button').getAttribute('aria-pressed'), 'false');
    await ana.page.keyboard.press('f');
    await waitForRemoteNotes(ben.page, heard0 + 4);
    assert.equal(await started(), s0 + 1, 'unmuted: the voice starts');

    // Ana turns Ben down to 25 %: his channel's gain follows, the master bus too.
    await ana.page.locator('[data-testid="participant"][data-name="Ben"] [data-testid="volume-slider"]').fill('25');
    await ana.page.getByTestId('master-volume').fill('50');
    const heardA = await remoteNoteCount(ana.page);
    await ben.page.keyboard.press('a');
    await waitForRemoteNotes(ana.page, heardA + 1);
    const gains = await ana.page.evaluate((id) => {
      const { mixer, synth } = window.jam.parts;
      return { player: mixer.nodeFor(id).gain.value, master: synth.out.gain.value };
    }, benId);
    assert.ok(Math.abs(gains.player - 0.25) < 1e-6, `Ben's gain ${gains.player}`);
    assert.ok(Math.abs(gains.master - 0.25) < 1e-6, `master bus ${gains.master} (half of full)`);
  });

  test('chat: a reliable broadcast over WebTransport and WebSocket, typed without playing notes', async () => {
    const sentBefore = await ana.page.getByTestId('local-note-count').textContent();
    const streamBefore = (await stats(ana.page)).streamSent;
    await ana.page.getByTestId('chat-input').click();
    await ana.page.keyboard.type('asdf ready when you are');
    await ana.page.keyboard.press('Enter');
    assert.equal(await ana.page.getByTestId('local-note-count').textContent(), sentBefore, 'typing in the chat plays nothing');
    await ben.page.locator('[data-testid="chat-line"]', { hasText: 'asdf ready when you are' }).waitFor();
    const line = ben.page.locator('[data-testid="chat-line"]').last();
    assert.equal(await line.locator('.chat-name').textContent(), 'Ana');
    assert.ok((await stats(ana.page)).streamSent > streamBefore, 'over WebTransport the chat goes on the control stream (reliable)');
    assert.equal(await ana.page.getByTestId('chat-input').inputValue(), '', 'the box empties once sent');

    await ben.page.getByTestId('chat-input').fill('count us in, Ana');
    await ben.page.getByTestId('chat-send').click();
    await ana.page.locator('[data-testid="chat-line"]', { hasText: 'count us in, Ana' }).waitFor();
    assert.equal(await ana.page.locator('[data-testid="chat-line"]').last().locator('.chat-name').textContent(), 'Ben');
    // Each page shows its own line too.
    await ana.page.locator('[data-testid="chat-line"][data-mine="true"]', { hasText: 'asdf ready' }).waitFor();
    await ben.page.locator('[data-testid="chat-line"][data-mine="true"]', { hasText: 'count us in' }).waitFor();
  });

  test('a remote note held for 10 s keeps sounding, and ends on note-off', async () => {
    const key = `${anaId}:69`;
    await ana.page.locator('[data-testid="key-60"]').focus();
    await ana.page.keyboard.down('h'); // A4 = 69
    await ben.page.locator('[data-testid="key-69"].remote').waitFor();
    const since = Date.now();
    // Watch for 10.5 s that the note never stops.
    const held = await ben.page.evaluate(
      async ([k, ms]) => {
        const end = performance.now() + ms;
        while (performance.now() < end) {
          if (!window.jam.parts.voices.heldRemote().includes(k)) return false;
          if (!document.querySelector('[data-testid="key-69"]').classList.contains('remote')) return false;
          await new Promise((r) => setTimeout(r, 100));
        }
        return true;
      },
      [key, 10_500],
    );
    assert.ok(held, `the note sounded and showed for 10.5 s (${Date.now() - since} ms)`);
    await ana.page.keyboard.up('h');
    await ben.page.locator('[data-testid="key-69"]:not(.remote)').waitFor({ timeout: 2000 });
    assert.ok(!(await ben.page.evaluate(() => window.jam.parts.voices.heldRemote())).includes(key));
  });

  test('a held remote note ends when its player drops out (away)', async () => {
    const key = `${anaId}:71`;
    await ana.page.keyboard.down('j'); // B4 = 71
    await ben.page.locator('[data-testid="key-71"].remote').waitFor();
    const resumes = (await stats(ana.page)).resumes;
    await ben.page.evaluate((id) => {
      window.__away = false;
      window.jam.client.on('user-away', (d) => {
        if (d.userId === id) window.__away = window.jam.parts.voices.heldRemote().length === 0 ? 'released' : 'still held';
      });
    }, anaId);
    await ana.page.evaluate(() => window.jam.client[Symbol.for('jam-client.dropTransport')]());
    await ben.page.waitForFunction(() => window.__away !== false, null, { timeout: TIMEOUT.reconnect });
    assert.equal(await ben.page.evaluate(() => window.__away), 'released', 'released as the away arrived');
    await ben.page.locator('[data-testid="key-71"]:not(.remote)').waitFor({ timeout: 2000 });
    assert.ok(!(await ben.page.evaluate(() => window.jam.parts.voices.heldRemote())).includes(key));
    await ana.page.keyboard.up('j');
    await ana.page.waitForFunction((n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected', resumes, { timeout: TIMEOUT.reconnect });
    await waitForStatus(ben.page, 'Ana', 'active');
  });

  test('seeing the others: fixed colours clear of your own highlight, a legend, drum hits above the keys and notes above the pads', async () => {
    const cleo = await player({ query: `/?room=${roomCode}`, viewport: { width: 390, height: 844 } });
    await joinSession(cleo.page, { name: 'Cleo', instrument: 'drums' });
    await waitForNames(ana.page, ['Ana', 'Ben', 'Cleo']);
    await waitForNames(cleo.page, ['Ana', 'Ben', 'Cleo']);

    // One colour per player, the same on every page, none near your own violet.
    const hues = {};
    for (const p of [ana, ben, cleo]) {
      for (const r of await participants(p.page)) {
        const hue = Number(r.hue);
        assert.ok(hueDistance(hue, OWN_HUE) >= 30, `${r.name}'s hue ${hue} is far from your own highlight`);
        if (hues[r.name] === undefined) hues[r.name] = hue;
        assert.equal(hue, hues[r.name], `${r.name} has one colour on every page`);
      }
    }
    assert.equal(new Set(Object.values(hues)).size, 3, 'three players, three colours');

    // The legend lists the others, in their colours.
    const legend = await ana.page.$$eval('[data-testid="legend-item"]', (els) => els.map((el) => [el.dataset.name, Number(el.dataset.hue)]));
    assert.deepEqual(legend, [['Ben', hues.Ben], ['Cleo', hues.Cleo]]);

    // Ana plays along with the metronome, others' notes in steady playout.
    await ana.page.getByTestId('playout-steady').check();
    await ana.page.getByTestId('metronome-toggle').click();

    // A keyboard player sees the drummer's hits on the strip above the keys.
    assert.ok(await ana.page.getByTestId('hit-strip').isVisible());
    await cleo.page.getByTestId('pad-snare').click();
    await ana.page.locator(`[data-testid="hit-snare"].remote-hit`).waitFor();
    assert.equal(Number(await ana.page.getByTestId('hit-snare').getAttribute('data-last-hue')), hues.Cleo);

    // The drummer sees melodic notes on the strip above the pads, in the player's colour.
    assert.ok(await cleo.page.getByTestId('note-strip').isVisible());
    await ana.page.keyboard.down('d'); // E4 = 64
    await cleo.page.locator('[data-testid="strip-64"].lit').waitFor();
    const strip = await cleo.page.getByTestId('strip-64').evaluate((el) => el.style.getPropertyValue('--hue'));
    assert.equal(Number(strip), hues.Ana);
    // ... and Ben sees it on his keys in Ana's colour.
    await ben.page.locator('[data-testid="key-64"].remote').waitFor();
    assert.equal(Number(await ben.page.getByTestId('key-64').evaluate((el) => el.style.getPropertyValue('--remote-hue'))), hues.Ana);
    await ben.page.keyboard.down('k'); // C5 = 72, Ben's synth on Ana's keys
    await ana.page.locator('[data-testid="key-72"].remote').waitFor();
    assert.match(await ana.page.getByTestId('playout-delay').textContent(), /Ben \d+ ms/);
    await screenshot(ana.page, 'musician-desktop-1280x800.png');
    await screenshot(cleo.page, 'musician-phone-390x844.png', { fullPage: false });
    await ben.page.keyboard.up('k');
    await ana.page.getByTestId('metronome-toggle').click();
    await ana.page.getByTestId('playout-immediate').check();
    await ana.page.keyboard.up('d');
    await cleo.page.locator('[data-testid="strip-64"]:not(.lit)').waitFor();

    // The drummer's hint lists the pads' keys, not the piano's.
    const hint = await cleo.page.getByTestId('hint').textContent();
    assert.match(hint, /Kick/);
    assert.match(hint, /Crash/);
    assert.doesNotMatch(hint, /octave/);
    assert.equal(await cleo.page.locator('[data-testid="hint"] kbd').count(), 8);
    const pianoHint = await ana.page.getByTestId('hint').textContent();
    assert.match(pianoHint, /octave/);
    await cleo.context.close();
  });

  test('fixes: the share link field does not swallow the playing keys; announcements go stale and go', async () => {
    const before = Number(await ana.page.getByTestId('local-note-count').textContent());
    await ana.page.getByTestId('share-link').click();
    await ana.page.keyboard.press('a');
    await ana.page.keyboard.press('s');
    assert.equal(Number(await ana.page.getByTestId('local-note-count').textContent()), before + 2, 'keys play with the share link focused');

    // "Dan joined" shows, and is gone a few seconds later.
    const dan = await player({ query: `/?room=${roomCode}` });
    await joinSession(dan.page, { name: 'Dan', instrument: 'bass' });
    await ana.page.getByTestId('status-text').filter({ hasText: 'Dan joined' }).waitFor();
    await ana.page.waitForFunction(() => !document.querySelector('[data-testid="status-text"]').textContent.includes('joined'), null, { timeout: 10_000 });
    // A leave announced just before leaving does not follow you to the lobby.
    await leaveSession(dan.page);
    await ana.page.getByTestId('status-text').filter({ hasText: 'Dan left' }).waitFor();
    await leaveSession(ana.page);
    assert.doesNotMatch(await ana.page.getByTestId('status-text').textContent(), /left|joined/);
    // Back in: Ana joins Ben's room again.
    await joinSession(ana.page, { name: 'Ana', instrument: 'piano', roomCode });
    await waitForNames(ben.page, ['Ana', 'Ben']);
    anaId = await ana.page.evaluate(() => window.jam.client.room.userId);
    await dan.context.close();
  });

  test('a held remote note ends when its player leaves without a note-off', async () => {
    await ana.page.locator('[data-testid="key-60"]').focus();
    await ana.page.keyboard.down('k'); // C5 = 72
    await ben.page.locator('[data-testid="key-72"].remote').waitFor();
    // Leave straight from the client: no note-off goes out first.
    await ana.page.evaluate(() => window.jam.client.leave());
    await waitForNames(ben.page, ['Ben']);
    await ben.page.locator('[data-testid="key-72"]:not(.remote)').waitFor({ timeout: 2000 });
    assert.deepEqual(await ben.page.evaluate(() => window.jam.parts.voices.heldRemote()), []);
    await ana.page.keyboard.up('k');
  });

  test('phones: on an invite Join and Create are above the fold; in a session keys are at least 28 px, players above the keys; on its side the keyboard is in view', async () => {
    const code = roomCode;
    const phone = await player({ query: `/?room=${code}`, viewport: { width: 390, height: 844 } });
    await phone.page.getByTestId('invite').waitFor();
    for (const id of ['join-button', 'create-button', 'name-input']) {
      const box = await phone.page.getByTestId(id).boundingBox();
      assert.ok(box && box.y + box.height <= 844, `${id} above the fold (bottom at ${box && box.y + box.height})`);
    }
    await screenshot(phone.page, 'musician-phone-invite-390x844.png', { fullPage: false });
    // Scrolled down in the lobby, then joined: the session starts at the top.
    await phone.page.evaluate(() => window.scrollTo(0, 400));
    await joinSession(phone.page, { name: 'Pia', instrument: 'piano' });
    await waitForNames(phone.page, ['Ben', 'Pia']);
    assert.equal(await phone.page.evaluate(() => window.scrollY), 0, 'the page is back at the top');
    const status = await phone.page.getByTestId('status').boundingBox();
    assert.ok(status.y >= 0 && status.y < 200, 'the status bar is in view');
    const whites = await phone.page.$$eval('[data-testid="keyboard"] .key.white', (els) => els.map((el) => el.getBoundingClientRect().width));
    assert.ok(whites.length >= 8, `${whites.length} white keys`);
    assert.ok(Math.min(...whites) >= 28, `white keys ${Math.min(...whites).toFixed(1)} px wide`);
    const labels = await phone.page.$$eval('[data-testid="keyboard"] .key.white .key-name', (els) => els.map((el) => el.textContent));
    assert.equal(labels.length, whites.length, 'every white key is labelled');
    const list = await phone.page.getByTestId('participants').boundingBox();
    const keys = await phone.page.getByTestId('keyboard').boundingBox();
    assert.ok(list.y < keys.y, 'the players start above the keyboard');
    assert.ok(keys.y + keys.height <= 844, 'the keyboard is in view');
    // The octave buttons move the one octave shown.
    const label = await phone.page.getByTestId('octave-label').textContent();
    await phone.page.locator('#octave-up').click();
    assert.notEqual(await phone.page.getByTestId('octave-label').textContent(), label);
    await phone.page.locator('#octave-down').click();
    // A note above the octave shown lights the octave-up button in the player's colour.
    await ben.page.keyboard.press('x'); // Ben's keyboard from C5
    await ben.page.keyboard.down('d'); // E5 = 76, above Pia's C4–C5
    await phone.page.locator('#octave-up.remote-beyond').waitFor();
    const benHue = (await participants(phone.page)).find((r) => r.name === 'Ben').hue;
    assert.equal(await phone.page.locator('#octave-up').evaluate((el) => el.style.getPropertyValue('--hue')), benHue);
    await screenshot(phone.page, 'musician-phone-session-390x844.png', { fullPage: false });
    await ben.page.keyboard.up('d');
    await phone.page.locator('#octave-up:not(.remote-beyond)').waitFor();
    await ben.page.keyboard.press('z');

    const side = await player({ query: `/?room=${code}`, viewport: { width: 844, height: 390 } });
    await joinSession(side.page, { name: 'Sam', instrument: 'organ' });
    await waitForNames(side.page, ['Ben', 'Pia', 'Sam']);
    const kb = await side.page.getByTestId('keyboard').boundingBox();
    assert.ok(kb.y >= 0 && kb.y + kb.height <= 390, `the keyboard in view (${kb.y.toFixed(0)} to ${(kb.y + kb.height).toFixed(0)} of 390)`);
    const sideWhites = await side.page.$$eval('[data-testid="keyboard"] .key.white', (els) => els.map((el) => el.getBoundingClientRect().width));
    assert.ok(Math.min(...sideWhites) >= 28, `white keys ${Math.min(...sideWhites).toFixed(1)} px wide`);
    const sideList = await side.page.getByTestId('participants').boundingBox();
    assert.ok(sideList.y < 390, 'the players start in view');
    await ben.page.keyboard.down('a');
    await side.page.locator('[data-testid="key-60"].remote').waitFor();
    await screenshot(side.page, 'musician-phone-landscape-844x390.png', { fullPage: false });
    await ben.page.keyboard.up('a');
  });

  test('no page threw an uncaught error', () => {
    const errors = stage.players.flatMap((p) => p.errors.map((e) => e.stack || String(e)));
    assert.deepEqual(errors, []);
  });
});
