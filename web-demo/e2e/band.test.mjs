// band.test.mjs: the page for a band, in Chromium against the real jam-server.
// Two, three and six players (the room grows; the same pages throughout) at
// 1280×800, 390×844, 844×390 and 768×1024: a piano player's first key and a
// drummer's two rows of pads are on screen without scrolling and do not move
// when the offline banner shows or a tempo change is on its way; every
// player's colour, read from what the page draws, is at least 30° of hue from
// every other and from the violet of your own keys, and the same on every
// page, in the room's order. Then the chat (an unread count while it is out of
// view or collapsed, the keys given back after sending, Escape), a reload that
// keeps the chat and the metronome, a player whose link goes silent shown "no
// signal" on the others' pages, the offline banner's words as the seat is held
// and then given up, "set by" for someone who left and came back, and a server
// restart without a room store after which every page shows the room's order
// and tempo and nobody is announced as joined (and an error about reaching the
// server goes once Retry gets through). Ana (piano) and Ben (drums) reach the server over
// WebSocket through relays that can cut their links; the others play straight
// to it, most over WebTransport.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  ARTIFACTS,
  TIMEOUT,
  TcpRelay,
  createSession,
  identities,
  joinSession,
  leaveSession,
  participants,
  screenshot,
  settle,
  stats,
  throughRelay,
  useStage,
  waitForNames,
  waitForRemoteNotes,
} from './harness.mjs';

const VIEWPORTS = [
  { label: 'desktop', width: 1280, height: 800 },
  { label: 'phone', width: 390, height: 844 },
  { label: 'landscape', width: 844, height: 390 },
  { label: 'tablet', width: 768, height: 1024 },
];
const BAND = [
  { name: 'Ana', instrument: 'piano', relay: true },
  { name: 'Ben', instrument: 'drums', relay: true },
  { name: 'Cleo', instrument: 'bass' },
  { name: 'Dan', instrument: 'synth', query: '&transport=websocket' },
  { name: 'Eve', instrument: 'organ' },
  { name: 'Finn', instrument: 'piano' },
];
/** Hue distances below this between two players, or a player and your own keys, fail. */
const MIN_HUE_APART = 30;
/** A tempo change must stay pending at least this long for the measurements. */
const PENDING_FOR_MS = 6000;
/** The room plays one of these, 16 beats a bar (about 16 s), so a change waits for a while. */
const SLOW = [60, 61];

const hueDistance = (a, b) => {
  const d = Math.abs(a - b) % 360;
  return Math.min(d, 360 - d);
};

/** In the page: the hue of a CSS `rgb(…)` colour (null for a grey). */
const HUE_OF = `(css) => {
  const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map((v) => Number(v) / 255);
  const max = Math.max(r, g, b), min = Math.min(r, g, b), d = max - min;
  if (d < 1e-6) return null;
  let h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  return (h * 60 + 360) % 360;
}`;

/**
 * Where the page's instrument is: the keyboard (and its first key) or the
 * pads (all eight, both rows), relative to the viewport, with the viewport's
 * size and how far anything was scrolled.
 */
function instrument(page) {
  return page.evaluate(() => {
    const drums = window.jam.state.instrument === 'drums';
    const area = document.getElementById(drums ? 'pads' : 'keyboard');
    const box = (el) => {
      const r = el.getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, h: r.height };
    };
    const parts = drums ? [...area.querySelectorAll('.pad')] : [area.querySelector('.key')];
    // The note names on the white keys: their colour, size and the key's colours behind them.
    const label = drums ? null : area.querySelector('.key.white:not(.active):not(.remote) .key-name');
    const names = label && {
      color: getComputedStyle(label).color,
      opacity: Number(getComputedStyle(label).opacity),
      px: parseFloat(getComputedStyle(label).fontSize),
      behind: getComputedStyle(label.parentElement).backgroundImage.match(/rgba?\([^)]*\)/g),
    };
    return {
      drums,
      names,
      area: box(area),
      parts: parts.map(box),
      vw: innerWidth,
      vh: innerHeight,
      scrolled: scrollY + document.querySelector('main').scrollTop,
      keyCount: window.jam.state.keyCount,
    };
  });
}

function assertInView(m, what) {
  assert.ok(m.parts.length === (m.drums ? 8 : 1), `${what}: ${m.parts.length} parts`);
  for (const [i, b] of m.parts.entries()) {
    const inside = b.w > 0 && b.h > 0 && b.x >= -0.5 && b.y >= -0.5 && b.x + b.w <= m.vw + 0.5 && b.y + b.h <= m.vh + 0.5;
    assert.ok(inside, `${what}: ${m.drums ? `pad ${i + 1}` : 'the first key'} at x ${b.x.toFixed(0)}..${(b.x + b.w).toFixed(0)}, y ${b.y.toFixed(0)}..${(b.y + b.h).toFixed(0)} of ${m.vw}×${m.vh}`);
  }
  assert.equal(m.scrolled, 0, `${what}: nothing scrolled`);
}

function assertSameBox(before, after, what) {
  for (const k of ['x', 'y', 'w', 'h']) {
    assert.ok(Math.abs(before.area[k] - after.area[k]) <= 0.5, `${what}: the instrument moved (${k} ${before.area[k].toFixed(1)} -> ${after.area[k].toFixed(1)})`);
  }
}

/** The contrast ratio of two `rgb(…)` colours (WCAG 2). */
function contrast(a, b) {
  const lum = (css) => {
    const [r, g, b2] = css.match(/[\d.]+/g).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b2;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** The note names on the white keys: at least 4.5:1 against every colour of the key, at least 12 px. */
function assertReadable(m, what) {
  if (m.drums) return Infinity;
  assert.ok(m.names, `${what}: the white keys are named`);
  assert.equal(m.names.opacity, 1, `${what}: the names are not faded`);
  assert.ok(m.names.px >= 12, `${what}: the names are ${m.names.px} px`);
  const worst = Math.min(...m.names.behind.map((bg) => contrast(m.names.color, bg)));
  assert.ok(worst >= 4.5, `${what}: the names' contrast is ${worst.toFixed(2)}:1`);
  return worst;
}

const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/** Each player's hue as the page draws it (the avatar's computed colour), in the page's order. */
function drawnHues(page) {
  return page.evaluate((src) => {
    // eslint-disable-next-line no-new-func
    const hue = new Function(`return (${src})`)();
    return [...document.querySelectorAll('[data-testid="participant"]')].map((li) => ({
      name: li.dataset.name,
      hue: hue(getComputedStyle(li.querySelector('.avatar')).backgroundColor),
    }));
  }, HUE_OF);
}

/** The hues of your own pressed key as drawn (both ends of its gradient), while `key` is held. */
async function ownKeyHues(page, key) {
  await page.keyboard.down(key);
  try {
    await page.locator('[data-testid="keyboard"] .key.active').waitFor();
    return await page.evaluate((src) => {
      // eslint-disable-next-line no-new-func
      const hue = new Function(`return (${src})`)();
      const css = getComputedStyle(document.querySelector('[data-testid="keyboard"] .key.active')).backgroundImage;
      return css.match(/rgba?\([^)]*\)/g).map(hue).filter((h) => h !== null);
    }, HUE_OF);
  } finally {
    await page.keyboard.up(key);
  }
}

describe('a band on laptops, phones and tablets', { timeout: 240_000 }, () => {
  const stage = useStage({ logName: 'server-band.log' });
  /** name -> { page, context, relay? } */
  const band = {};
  const relays = [];
  after(async () => {
    for (const r of relays) await r.close();
  });
  let roomCode;
  /** name -> viewport label -> the instrument online, for the states that must not move it */
  const online = {};
  /** the lowest contrast and the smallest size of the note names seen */
  let readable = Infinity;
  let smallest = Infinity;
  let bpm = null;

  async function open({ name, instrument, relay, query = '' }) {
    let r = null;
    if (relay) {
      r = await TcpRelay.start(stage.server.httpPort);
      relays.push(r);
    }
    const p = await stage.player({
      query: roomCode ? `/?room=${roomCode}${relay ? '&transport=websocket' : query}` : `/?transport=websocket`,
      rewriteConnect: r ? throughRelay(r) : undefined,
    });
    if (roomCode) await joinSession(p.page, { name, instrument });
    else roomCode = await createSession(p.page, { name, instrument });
    band[name] = { ...p, relay: r, name };
    return band[name];
  }

  /** The pages whose instrument is checked: a piano player and a drummer. */
  const viewers = () => [band.Ana, band.Ben];

  async function resize(viewport) {
    for (const v of viewers()) await v.page.setViewportSize({ width: viewport.width, height: viewport.height });
    for (const v of viewers()) await settle(v.page);
  }

  /** Sets the room's tempo from Ana's page, the way a person does. */
  async function setTempo(next, beats) {
    await band.Ana.page.getByTestId('bpm-input').fill(String(next));
    await band.Ana.page.getByTestId('bpb-input').selectOption(String(beats));
    await band.Ana.page.getByTestId('tempo-set').click();
  }

  /** A tempo change on its way that will stay on its way for PENDING_FOR_MS at least. */
  async function pendingTempo() {
    // The room plays 60 or 61 BPM in 16/4 (a bar of about 16 s): wait for a bar
    // line far enough away, then ask for the other tempo.
    await band.Ana.page.waitForFunction(
      (ms) => {
        const c = window.jam.client;
        return !c.pendingTempo && c.nextBarTime() - c.serverNow() > ms;
      },
      PENDING_FOR_MS,
      { timeout: 40_000, polling: 200 },
    );
    bpm = bpm === SLOW[0] ? SLOW[1] : SLOW[0];
    await setTempo(bpm, 16);
    for (const v of viewers()) await v.page.locator('[data-testid="tempo-pending"][data-pending="true"]').waitFor();
  }

  async function checkBand(count) {
    const names = BAND.slice(0, count).map((b) => b.name);
    for (const name of names) await waitForNames(band[name].page, names);

    // The room's order on every page: the join order.
    for (const name of names) {
      assert.deepEqual((await participants(band[name].page)).map((p) => p.name), names, `${name}'s page shows the room's order`);
    }

    // Colours: at least 30° apart, clear of your own keys, the same everywhere.
    await band.Ana.page.setViewportSize({ width: 1280, height: 800 });
    const own = await ownKeyHues(band.Ana.page, 'k');
    assert.ok(own.length >= 1, 'your own pressed key has a colour');
    const drawn = await drawnHues(band.Ana.page);
    let closest = Infinity;
    for (const [i, a] of drawn.entries()) {
      assert.notEqual(a.hue, null, `${a.name} has a colour`);
      for (const o of own) {
        closest = Math.min(closest, hueDistance(a.hue, o));
        assert.ok(hueDistance(a.hue, o) >= MIN_HUE_APART, `${a.name}'s hue ${a.hue.toFixed(1)} is ${hueDistance(a.hue, o).toFixed(1)}° from your own keys (${o.toFixed(1)})`);
      }
      for (const b of drawn.slice(0, i)) {
        closest = Math.min(closest, hueDistance(a.hue, b.hue));
        assert.ok(hueDistance(a.hue, b.hue) >= MIN_HUE_APART, `${a.name} (${a.hue.toFixed(1)}) and ${b.name} (${b.hue.toFixed(1)}) are ${hueDistance(a.hue, b.hue).toFixed(1)}° apart`);
      }
    }
    const seats = await identities(band.Ana.page);
    for (const name of names) assert.deepEqual(await identities(band[name].page), seats, `${name}'s page gives everyone the same colours`);

    // Online, no tempo change on its way: the instrument on screen, at every size.
    await band.Ana.page.waitForFunction(() => window.jam.client.pendingTempo === null, null, { timeout: 30_000 });
    // With six, Finn holds E4 for the pictures: Ana's key and Ben's strip light in his colour.
    if (count === 6) {
      await band.Finn.page.keyboard.down('d');
      await band.Ana.page.locator('[data-testid="key-64"].remote').waitFor();
      await band.Ben.page.locator('[data-testid="strip-64"].lit').waitFor();
    }
    for (const viewport of VIEWPORTS) {
      await resize(viewport);
      for (const v of viewers()) {
        const m = await instrument(v.page);
        assertInView(m, `${count} players, ${v.name} at ${viewport.label}`);
        readable = Math.min(readable, assertReadable(m, `${count} players, ${v.name} at ${viewport.label}`));
        smallest = Math.min(smallest, m.names ? m.names.px : Infinity);
        if (['desktop', 'tablet'].includes(viewport.label) && !m.drums) assert.equal(m.keyCount, 25, `two octaves at ${viewport.label}`);
        // Every name whole, and where the share link shows, all of it.
        const cut = await v.page.$$eval('[data-testid="participant"] .name', (els) => els.filter((el) => el.scrollWidth > el.clientWidth + 0.5).map((el) => el.textContent));
        assert.deepEqual(cut, [], `${count} players, ${v.name} at ${viewport.label}: names cut short`);
        if (['desktop', 'tablet'].includes(viewport.label)) {
          assert.ok(await v.page.getByTestId('share-link').evaluate((el) => el.scrollWidth <= el.clientWidth), `${viewport.label}: the whole share link shows`);
        }
        online[v.name] = { ...online[v.name], [viewport.label]: m };
        if (count === 6) await screenshot(v.page, `band-${v.name.toLowerCase()}-${viewport.width}x${viewport.height}.png`, { fullPage: false });
      }
    }

    if (count === 6) await band.Finn.page.keyboard.up('d');

    // A tempo change on its way: its line was there all along, nothing moves.
    await band.Ana.page.setViewportSize({ width: 1280, height: 800 });
    await pendingTempo();
    for (const viewport of VIEWPORTS) {
      await resize(viewport);
      for (const v of viewers()) {
        const m = await instrument(v.page);
        const what = `${count} players, ${v.name} with a tempo change pending at ${viewport.label}`;
        assertInView(m, what);
        assertSameBox(online[v.name][viewport.label], m, what);
      }
    }
    assert.ok(await band.Ben.page.evaluate(() => window.jam.client.pendingTempo !== null), 'the change was still on its way when measured');

    // Offline: the banner lies over the page, never over the keys, and moves nothing.
    for (const v of viewers()) v.relay.cut();
    for (const v of viewers()) await v.page.locator('[data-testid="status"][data-offline="true"]').waitFor({ timeout: 5000 });
    for (const viewport of VIEWPORTS) {
      await resize(viewport);
      for (const v of viewers()) {
        const banner = v.page.getByTestId('session-banner');
        await banner.filter({ hasText: /offline — your notes are not reaching the room/i }).waitFor();
        const m = await instrument(v.page);
        const what = `${count} players, ${v.name} offline at ${viewport.label}`;
        assertInView(m, what);
        assertSameBox(online[v.name][viewport.label], m, what);
        const b = await banner.boundingBox();
        assert.ok(!overlaps({ x: b.x, y: b.y, w: b.width, h: b.height }, m.area), `${what}: the banner covers the instrument`);
        if (count === 6 && viewport.label === 'phone' && v.name === 'Ana') await screenshot(v.page, 'band-offline-390x844.png', { fullPage: false });
      }
    }
    for (const v of viewers()) {
      const resumes = (await stats(v.page)).resumes;
      v.relay.restore();
      await v.page.evaluate(() => window.jam.client.reconnectNow());
      await v.page.waitForFunction((n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected', resumes, { timeout: TIMEOUT.reconnect });
      await v.page.getByTestId('session-banner').waitFor({ state: 'hidden' });
    }

    return closest;
  }

  test('two players: the instrument in view and in place at every size, colours apart', async (t) => {
    for (const b of BAND.slice(0, 2)) await open(b);
    // A slow tempo with long bars, so that a change stays on its way for a while.
    bpm = SLOW[0];
    await setTempo(bpm, 16);
    for (const v of viewers()) await v.page.locator(`[data-testid="tempo-panel"][data-bpm="${bpm}"]`).waitFor();
    t.diagnostic(`closest hues: ${(await checkBand(2)).toFixed(1)}°`);
  });

  test('three players', async (t) => {
    await open(BAND[2]);
    t.diagnostic(`closest hues: ${(await checkBand(3)).toFixed(1)}°`);
  });

  test('six players', async (t) => {
    for (const b of BAND.slice(3)) await open(b);
    t.diagnostic(`closest hues: ${(await checkBand(6)).toFixed(1)}°`);
    t.diagnostic(`note names on the white keys: at least ${readable.toFixed(2)}:1, at least ${smallest.toFixed(1)} px`);
  });

  test('chat: an unread count while it is out of view or collapsed, the keys back after sending, Escape leaves the box', async () => {
    const { Ana: ana, Cleo: cleo } = band;
    await ana.page.setViewportSize({ width: 390, height: 844 });
    await settle(ana.page);
    // With six players the chat is below the players, out of the phone's view.
    const chatBox = await ana.page.getByTestId('chat').boundingBox();
    const deck = await ana.page.locator('#deck').boundingBox();
    assert.ok(chatBox.y > deck.y + deck.height - chatBox.height / 2, 'the chat starts out of view');
    assert.ok(await ana.page.getByTestId('chat-unread').isHidden());

    await cleo.page.getByTestId('chat-input').fill('one more time from the top');
    await cleo.page.getByTestId('chat-send').click();
    await ana.page.locator('[data-testid="chat-line"]', { hasText: 'one more time from the top' }).waitFor({ state: 'attached' });
    await ana.page.locator('[data-testid="chat-unread"]:not([hidden])', { hasText: '1' }).waitFor();
    assert.ok(await ana.page.getByTestId('chat-jump').isVisible(), 'the Chat button is in view');

    // The Chat button opens it: the count goes, the box takes the keys.
    await ana.page.getByTestId('chat-jump').click();
    await ana.page.getByTestId('chat-unread').waitFor({ state: 'hidden' });
    assert.equal(await ana.page.evaluate(() => document.activeElement.id), 'chat-input');

    // After sending, the keys play again.
    const sent = Number(await ana.page.getByTestId('local-note-count').textContent());
    await ana.page.keyboard.type('ready');
    await ana.page.keyboard.press('Enter');
    await cleo.page.locator('[data-testid="chat-line"]', { hasText: 'ready' }).waitFor();
    assert.notEqual(await ana.page.evaluate(() => document.activeElement.id), 'chat-input', 'the box gave the keys back');
    await ana.page.keyboard.press('a');
    assert.equal(Number(await ana.page.getByTestId('local-note-count').textContent()), sent + 1, 'A played a note');
    assert.equal(await ana.page.getByTestId('chat-input').inputValue(), '', 'and typed nothing');

    // Escape leaves the box, keeping what was typed.
    await ana.page.getByTestId('chat-input').click();
    await ana.page.keyboard.type('x');
    await ana.page.keyboard.press('Escape');
    assert.notEqual(await ana.page.evaluate(() => document.activeElement.id), 'chat-input');
    await ana.page.keyboard.press('s');
    assert.equal(Number(await ana.page.getByTestId('local-note-count').textContent()), sent + 2, 'S played a note');
    assert.equal(await ana.page.getByTestId('chat-input').inputValue(), 'x');
    await ana.page.getByTestId('chat-input').fill('');

    // On a laptop the chat is in view: a line counts as seen ...
    await ana.page.setViewportSize({ width: 1280, height: 800 });
    await settle(ana.page);
    await cleo.page.getByTestId('chat-input').fill('seen at once');
    await cleo.page.getByTestId('chat-send').click();
    await ana.page.locator('[data-testid="chat-line"]', { hasText: 'seen at once' }).waitFor();
    await settle(ana.page);
    assert.ok(await ana.page.getByTestId('chat-unread').isHidden(), 'no count for a line in view');
    // ... unless it is collapsed.
    await ana.page.getByTestId('chat-toggle').click();
    await cleo.page.getByTestId('chat-input').fill('and again');
    await cleo.page.getByTestId('chat-send').click();
    await ana.page.locator('[data-testid="chat-unread"]:not([hidden])', { hasText: '1' }).waitFor();
    assert.equal(await ana.page.getByTestId('chat-unread-title').textContent(), '1');
    await ana.page.getByTestId('chat-toggle').click();
    await ana.page.getByTestId('chat-unread').waitFor({ state: 'hidden' });
    await ana.page.locator('[data-testid="chat-line"]', { hasText: 'and again' }).waitFor();
  });

  test('a reload keeps the chat, the metronome and its volume', async () => {
    const { Ana: ana } = band;
    await ana.page.getByTestId('metronome-toggle').click();
    await ana.page.getByTestId('metronome-volume').fill('35');
    const lines = await ana.page.locator('[data-testid="chat-line"]').allTextContents();
    assert.ok(lines.length >= 4, `${lines.length} lines before the reload`);

    await ana.page.reload();
    await ana.page.getByTestId('session').waitFor({ timeout: TIMEOUT.reconnect });
    await ana.page.waitForFunction(() => window.jam.client.state === 'connected' && window.jam.client.room, null, { timeout: TIMEOUT.reconnect });
    assert.equal((await stats(ana.page)).resumes, 1, 'the seat was taken back');
    assert.deepEqual(await ana.page.locator('[data-testid="chat-line"]').allTextContents(), lines, 'the same lines, once each');
    assert.equal(await ana.page.getByTestId('metronome-toggle').getAttribute('aria-pressed'), 'true');
    assert.equal(await ana.page.getByTestId('metronome-volume').inputValue(), '35');
    // The first gesture starts the sound, and the clicks follow the room's beat.
    await ana.page.getByTestId('metronome-volume').click();
    await ana.page.waitForFunction(() => window.jam.parts.metronome.clicks.length > 0, null, { timeout: 60_000 });
    await ana.page.getByTestId('metronome-toggle').click();

    // A line after the reload is heard once.
    await band.Cleo.page.getByTestId('chat-input').fill('welcome back');
    await band.Cleo.page.getByTestId('chat-send').click();
    await ana.page.locator('[data-testid="chat-line"]', { hasText: 'welcome back' }).waitFor();
    assert.equal(await ana.page.locator('[data-testid="chat-line"]').count(), lines.length + 1);
  });

  test('a player whose link goes silent is greyed "no signal" on the other pages within 4 s, and is back when it returns', async (t) => {
    const { Ana: ana, Ben: ben, Cleo: cleo } = band;
    await ana.page.setViewportSize({ width: 1280, height: 800 });
    for (const p of [ana, cleo]) await p.page.locator('[data-testid="participant"][data-name="Ben"][data-status="active"]').waitFor();
    const resumes = (await stats(ben.page)).resumes;
    // Ben's Wi-Fi drops: nothing gets through either way, and nothing is closed.
    ben.relay.goDark();
    const darkAt = Date.now();
    for (const p of [ana, cleo]) {
      await p.page.locator('[data-testid="participant"][data-name="Ben"][data-away-reason="silent"]').waitFor({ timeout: 4000 });
    }
    const tookMs = Date.now() - darkAt;
    t.diagnostic(`Ben shown "no signal" ${tookMs} ms after his link went dark`);
    assert.ok(tookMs <= 4000, `shown after ${tookMs} ms`);
    for (const p of [ana, cleo]) {
      const row = (await participants(p.page)).find((r) => r.name === 'Ben');
      assert.equal(row.status, 'away');
      assert.match(row.text, /no signal/);
      assert.doesNotMatch(row.text, /reconnecting/);
      await p.page.locator('[data-testid="legend-item"][data-name="Ben"].away').waitFor();
    }
    await screenshot(ana.page, 'band-no-signal-1280x800.png', { fullPage: false });
    await ana.page.locator('.people').screenshot({ path: `${ARTIFACTS}/band-no-signal-players.png` });

    ben.relay.restore();
    await ben.page.evaluate(() => window.jam.client.reconnectNow());
    await ben.page.waitForFunction((n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected', resumes, { timeout: TIMEOUT.reconnect });
    for (const p of [ana, cleo]) await p.page.locator('[data-testid="participant"][data-name="Ben"][data-status="active"]').waitFor();
  });

  test('the offline banner follows the seat: held for 30 s, then maybe gone, given up after 45 s', async () => {
    const { Ben: ben } = band;
    // Ben's page runs on a clock the test moves; the server keeps its own time.
    await ben.page.clock.install();
    const resumes = (await stats(ben.page)).resumes;
    ben.relay.cut();
    const banner = ben.page.getByTestId('session-banner');
    await banner.filter({ hasText: 'keeps your seat for at least 30 s' }).waitFor();
    await ben.page.clock.fastForward(31_000);
    await banner.filter({ hasText: 'so yours may be gone' }).waitFor();
    assert.match(await banner.textContent(), /joins the room again as a new player/);
    await ben.page.clock.fastForward(15_000);
    await banner.filter({ hasText: 'the server has given your seat up' }).waitFor();
    // The server's own clock moved a few seconds: the seat is still there to take back.
    ben.relay.restore();
    await ben.page.evaluate(() => window.jam.client.reconnectNow());
    await ben.page.waitForFunction((n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected', resumes, { timeout: TIMEOUT.reconnect });
    await banner.waitFor({ state: 'hidden' });
  });

  test('"set by" names whoever set the tempo, after they left and when they are back', async () => {
    const { Ana: ana, Dan: dan } = band;
    await dan.page.getByTestId('bpm-input').fill('90');
    await dan.page.getByTestId('bpb-input').selectOption('4');
    await dan.page.getByTestId('tempo-set').click();
    await ana.page.getByTestId('tempo-setby').filter({ hasText: /^set by Dan$/ }).waitFor({ timeout: 60_000 });
    await leaveSession(dan.page);
    await ana.page.getByTestId('tempo-setby').filter({ hasText: /^set by Dan, who has left$/ }).waitFor();
    await joinSession(dan.page, { name: 'Dan', instrument: 'synth', roomCode });
    await ana.page.getByTestId('tempo-setby').filter({ hasText: /^set by Dan$/ }).waitFor();
  });

  test('no page threw an uncaught error', () => {
    const errors = stage.players.flatMap((p) => p.errors.map((e) => e.stack || String(e)));
    assert.deepEqual(errors, []);
  });
});

describe('a server restart without a room store', { timeout: 120_000 }, () => {
  const stage = useStage({ logName: 'server-band-restart.log', store: false });
  const relays = [];
  after(async () => {
    for (const r of relays) await r.close();
  });
  const pages = {};
  const NAMES = ['Ana', 'Ben', 'Cleo'];

  test('every page shows the room\'s order and tempo, and nobody is announced as joined', async (t) => {
    let roomCode = null;
    for (const [i, name] of NAMES.entries()) {
      const relay = await TcpRelay.start(stage.server.httpPort);
      relays.push(relay);
      const p = await stage.player({ query: roomCode ? `/?room=${roomCode}&transport=websocket` : '/?transport=websocket', rewriteConnect: throughRelay(relay) });
      const instrument = ['piano', 'drums', 'bass'][i];
      if (roomCode) await joinSession(p.page, { name, instrument });
      else roomCode = await createSession(p.page, { name, instrument });
      pages[name] = { ...p, relay };
    }
    for (const name of NAMES) await waitForNames(pages[name].page, NAMES);
    const seats = await identities(pages.Ana.page);
    // A tempo of the room before the restart; the recreated room starts again from the default.
    await pages.Ben.page.getByTestId('bpm-input').fill('96');
    await pages.Ben.page.getByTestId('tempo-set').click();
    for (const name of NAMES) await pages[name].page.locator('[data-testid="tempo-panel"][data-bpm="96"]').waitFor();

    // Everything the status bar says from now on.
    for (const name of NAMES) {
      await pages[name].page.evaluate(() => {
        window.__said = [];
        const el = document.querySelector('[data-testid="status-text"]');
        new MutationObserver(() => window.__said.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
      });
    }

    // Someone still in the lobby, to see an error about reaching the server go by itself.
    const lobby = await stage.player({ query: '/' });

    // The server restarts; the seats come back last joined first (Cleo, Ben, Ana):
    // the order in which the server hears of them is not the room's.
    await stage.server.stop();
    for (const name of NAMES) pages[name].relay.cut();
    for (const name of NAMES) await pages[name].page.locator('[data-testid="status"][data-offline="true"]').waitFor();
    await lobby.page.waitForFunction(() => window.jam.client.state === 'reconnecting', null, { timeout: TIMEOUT.reconnect });
    await lobby.page.getByTestId('name-input').fill('Dan');
    await lobby.page.getByTestId('create-button').click();
    await lobby.page.getByTestId('error-text').filter({ hasText: /reconnecting/i }).waitFor();
    await stage.server.start();
    await lobby.page.getByTestId('retry-button').click();
    await lobby.page.waitForFunction(() => window.jam.client.state === 'connected', null, { timeout: TIMEOUT.reconnect });
    await lobby.page.getByTestId('error').waitFor({ state: 'hidden' });
    for (const name of [...NAMES].reverse()) {
      const { page, relay } = pages[name];
      const resumes = (await stats(page)).resumes;
      relay.restore();
      await page.evaluate(() => window.jam.client.reconnectNow());
      await page.waitForFunction((n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected', resumes, { timeout: TIMEOUT.reconnect });
    }

    for (const name of NAMES) {
      const { page } = pages[name];
      await waitForNames(page, NAMES);
      assert.deepEqual((await participants(page)).map((p) => p.name), NAMES, `${name}'s page shows the room's order`);
      assert.deepEqual(await identities(page), seats, `${name}'s page: the same players and colours`);
      // The room's tempo: what the server says it is, the same on every page.
      const tempo = await page.evaluate(() => window.jam.client.tempo);
      assert.equal(tempo.bpm, 120, 'the recreated room plays the default tempo');
      await page.locator(`[data-testid="tempo-panel"][data-bpm="${tempo.bpm}"]`).waitFor();
      assert.equal(await page.getByTestId('tempo-bpm').textContent(), String(tempo.bpm));
    }
    // Cleo was back first: she heard of Ben and Ana as back, and nobody heard "joined".
    await pages.Cleo.page.waitForFunction(() => window.__said.some((s) => s.includes('Ana is back')), null, { timeout: TIMEOUT.ui });
    for (const name of NAMES) {
      const said = await pages[name].page.evaluate(() => window.__said);
      assert.ok(!said.some((s) => /joined/.test(s)), `${name}'s page said: ${JSON.stringify([...new Set(said)])}`);
    }
    t.diagnostic(`Cleo's page said: ${JSON.stringify([...new Set(await pages.Cleo.page.evaluate(() => window.__said))].filter((s) => /back/.test(s)))}`);

    // And the jam goes on.
    const heard = Number(await pages.Cleo.page.getByTestId('remote-note-count').textContent());
    await pages.Ana.page.keyboard.press('a');
    await waitForRemoteNotes(pages.Cleo.page, heard + 1);
    for (const p of stage.players) assert.deepEqual(p.errors, []);
  });
});
