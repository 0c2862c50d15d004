// playout.test.mjs: steady playout against a jittery path, in Chromium with
// the real jam-server. Ben's WebSocket runs through a relay that holds every
// chunk from the server for a random 0 to 30 ms (in order, as a path with
// queues does). Ana plays a phrase; in "immediate" mode Ben hears its
// intervals bent by the jitter, in "steady" mode within 2 ms of the
// intervals Ana played.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  JitterRelay,
  createSession,
  joinSession,
  relayWsUrl,
  throughRelay,
  transportOf,
  useStage,
  waitForNames,
  waitForRemoteNotes,
} from './harness.mjs';

const JITTER_MS = 30;
/** The phrase: this many notes, one every STEP_MS, each held HOLD_MS. */
const NOTES = 24;
const STEP_MS = 110;
const HOLD_MS = 45;

/** In Ana's page: plays the phrase through the page's own note path; resolves when done. */
function playPhrase(page, first) {
  return page.evaluate(
    async ([n, step, hold, base]) => {
      const { voices } = window.jam.parts;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        // Wait for the beat by the clock, not by adding up timer delays.
        const due = t0 + i * step;
        while (performance.now() < due - 2) await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now() - 2)));
        while (performance.now() < due);
        const note = base + (i % 12);
        voices.localOn(note);
        await new Promise((r) => setTimeout(r, hold));
        voices.localOff(note);
      }
    },
    [NOTES, STEP_MS, HOLD_MS, first],
  );
}

/** Ana's "on" send times (local ms) for notes sent after `since`. */
function sentOns(page, since) {
  return page.evaluate((s) => window.jam.parts.voices.trace.sent.filter((x) => x.type === 'on' && x.at > s).map((x) => x.at), since);
}

/** Ben's onsets of Ana's notes that arrived after `since`: audio times in ms. */
function heardOns(page, senderId, since) {
  return page.evaluate(
    ([id, s]) =>
      window.jam.parts.voices.trace.onsets
        .filter((o) => o.senderId === id && o.arrivedAt > s)
        .map((o) => ({ at: o.audioTime * 1000, mode: o.mode, late: o.late, delayMs: o.delayMs, anchor: o.anchor })),
    [senderId, since],
  );
}

/**
 * How far each heard inter-onset interval is from the one played:
 * `[{ error, steadyPair }]`, `steadyPair` when neither note came late and the
 * delay held (or came down by at most its 0.5 ms step) on the same anchor.
 */
function intervalErrors(sent, heard) {
  assert.equal(heard.length, sent.length, `heard ${heard.length} of ${sent.length} notes`);
  const out = [];
  for (let i = 1; i < sent.length; i++) {
    const [a, b] = [heard[i - 1], heard[i]];
    const steadyPair = !a.late && !b.late && a.anchor === b.anchor && a.delayMs !== null && Math.abs(b.delayMs - a.delayMs) <= 0.5 + 1e-9;
    out.push({ error: Math.abs(b.at - a.at - (sent[i] - sent[i - 1])), steadyPair });
  }
  return out;
}

describe('steady playout against a jittery path', { timeout: 180_000 }, () => {
  const stage = useStage({
    logName: 'server-playout.log',
    relay: (server) => JitterRelay.start(server.httpPort, { downMaxMs: JITTER_MS }),
  });

  test('immediate shows the raw jitter; steady keeps the phrase\'s intervals within 2 ms', async (t) => {
    const ana = await stage.player({ query: '/?transport=websocket' });
    const code = await createSession(ana.page, { name: 'Ana', instrument: 'piano' });
    const ben = await stage.player({
      query: `/?room=${code}&transport=websocket`,
      rewriteConnect: throughRelay(stage.relay),
    });
    await joinSession(ben.page, { name: 'Ben', instrument: 'synth' });
    await waitForNames(ana.page, ['Ana', 'Ben']);
    assert.equal(await transportOf(ben.page), 'websocket');
    assert.equal(await ben.page.evaluate(() => window.jam.client.connectInfo.websocket.url), relayWsUrl(stage.relay));
    const anaId = await ana.page.evaluate(() => window.jam.client.room.userId);
    const now = (p) => p.evaluate(() => performance.timeOrigin + performance.now());

    // Immediate (the default): each note sounds as it arrives.
    await ben.page.getByTestId('playout-immediate').check(); // a gesture: Ben's audio starts
    await ben.page.waitForFunction(() => window.jam.parts.synth.ctx && window.jam.parts.synth.ctx.state === 'running');
    let heardBefore = Number(await ben.page.getByTestId('remote-note-count').textContent());
    /** Plays one phrase; returns what Ana played and what Ben heard. */
    async function phrase(first) {
      const since = Math.min(await now(ana.page), await now(ben.page));
      await playPhrase(ana.page, first);
      heardBefore += NOTES;
      await waitForRemoteNotes(ben.page, heardBefore);
      return { sent: await sentOns(ana.page, since), heard: await heardOns(ben.page, anaId, since) };
    }
    const raw = await phrase(60);
    assert.ok(raw.heard.every((o) => o.mode === 'immediate'));
    const rawWorst = Math.max(...intervalErrors(raw.sent, raw.heard).map((e) => e.error));

    // Steady: a phrase to learn the jitter, then phrases measured. A note that
    // arrives after its slot (this loaded machine stalled a page for longer
    // than the delay) cannot be kept in time: it is marked late and raises the
    // delay. Up to three phrases are played to get one with no late note.
    await ben.page.getByTestId('playout-steady').check();
    await phrase(48);
    const measured = [];
    for (let i = 0; i < 3; i++) {
      const p = await phrase(60);
      assert.ok(p.heard.every((o) => o.mode === 'steady'));
      const errors = intervalErrors(p.sent, p.heard);
      const late = p.heard.filter((o) => o.late).length;
      measured.push({ ...p, errors, late });
      t.diagnostic(
        `steady phrase ${i + 1}: worst interval error ${Math.max(...errors.map((e) => e.error)).toFixed(2)} ms overall, ` +
          `${Math.max(0, ...errors.filter((e) => e.steadyPair).map((e) => e.error)).toFixed(2)} ms over ${errors.filter((e) => e.steadyPair).length} of ${errors.length} intervals with no late note; ` +
          `${late} late; delay ${Math.min(...p.heard.map((o) => o.delayMs)).toFixed(1)} to ${Math.max(...p.heard.map((o) => o.delayMs)).toFixed(1)} ms`,
      );
      if (late === 0) break;
    }
    const jitter = [...stage.relay.delays].sort((a, b) => a - b);
    t.diagnostic(
      `relay held chunks ${jitter[0].toFixed(1)} to ${jitter.at(-1).toFixed(1)} ms (median ${jitter[jitter.length >> 1].toFixed(1)}); ` +
        `immediate: worst interval error ${rawWorst.toFixed(2)} ms`,
    );
    assert.ok(rawWorst > 5, `immediate mode shows the jitter: worst ${rawWorst} ms`);
    // Wherever the notes came in time, the rhythm is the one played.
    for (const [i, m] of measured.entries()) {
      for (const [j, e] of m.errors.entries()) {
        if (e.steadyPair) assert.ok(e.error <= 2, `phrase ${i + 1}, interval ${j + 1}: ${e.error.toFixed(2)} ms off`);
      }
    }
    const clean = measured.find((m) => m.late === 0);
    assert.ok(clean, `a steady phrase with no late note (late: ${measured.map((m) => m.late).join(', ')}; the machine stalled the page each time)`);
    const steadyWorst = Math.max(...clean.errors.map((e) => e.error));
    assert.ok(steadyWorst <= 2, `steady mode keeps the whole phrase's rhythm: worst ${steadyWorst} ms`);
    assert.ok(rawWorst > 2 * steadyWorst, 'steady is much steadier than immediate');

    // The page shows the delay it plays at.
    const shown = ben.page.getByTestId('playout-delay');
    assert.equal(await shown.getAttribute('data-mode'), 'steady');
    assert.match(await shown.textContent(), /Ana \d+ ms/);
    const delay = Number(await shown.getAttribute('data-delay'));
    assert.ok(delay > 0 && delay < 1000, `delay shown ${delay} ms`);
    for (const p of stage.players) assert.deepEqual(p.errors, []);
  });
});
