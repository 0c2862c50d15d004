// remote-view.js: seeing the others play.
//
// Owns: the legend (each other player in their colour, in the room's order,
// lit as they play, greyed while away), and drawing remote notes in the
// player's colour on whatever you show: melodic notes on your keyboard's
// keys, or, when you play drums, on a strip of five octaves above your pads;
// drum hits on your pads, or, when you play a keyboard, on a strip of small
// pads above it. Does not own: the keys and pads (play-area.js), the colours
// and the order (colors.js, roster.js) or which notes sound (voices.js, which
// calls `noteOn`, `noteOff` and `hit` when a note sounds).

import { DRUM_PADS, drumPadFor, noteName } from './audio.js';
import { $, instrumentBadge, restartAnimation } from './dom.js';

/** The notes strip a drummer sees: C2 to C7. */
const STRIP_LOW = 36;
const STRIP_HIGH = 96;
const BLACK = new Set([1, 3, 6, 8, 10]);

export function createRemoteView({ client, colors, playArea, roster }) {
  /** note -> [senderId, ...] holding it, latest last */
  const holders = new Map();

  function hue(senderId) {
    return colors.hueOfId(senderId);
  }

  // --- the legend ------------------------------------------------------------

  function renderLegend() {
    const room = client.room;
    const list = $('legend');
    const others = room ? roster.sorted(room.participants.filter((p) => p.id !== room.userId)) : [];
    $('legend-box').hidden = others.length === 0;
    const existing = new Map([...list.children].map((li) => [li.dataset.userId, li]));
    list.replaceChildren(
      ...others.map((p) => {
        const li = existing.get(p.id) || document.createElement('li');
        li.className = 'legend-item';
        li.dataset.userId = p.id;
        li.dataset.testid = 'legend-item';
        li.dataset.name = p.name;
        li.style.setProperty('--hue', colors.hueOf(p));
        li.dataset.hue = String(colors.hueOf(p));
        li.classList.toggle('away', roster.awayReason(p) !== null);
        const swatch = document.createElement('span');
        swatch.className = 'swatch';
        swatch.setAttribute('aria-hidden', 'true');
        const name = document.createElement('span');
        name.textContent = p.name;
        li.replaceChildren(swatch, name, instrumentBadge(p.instrument));
        return li;
      }),
    );
    renderStrips();
  }

  function flashLegend(senderId) {
    const li = [...$('legend').children].find((el) => el.dataset.userId === senderId);
    if (li) restartAnimation(li, 'playing');
  }

  // --- the strips ------------------------------------------------------------

  /** Shows the strip for what your own view cannot show, and builds it once. */
  function renderStrips() {
    const drums = playArea.isDrums();
    const room = client.room;
    const others = room ? room.participants.filter((p) => p.id !== room.userId) : [];
    const drummers = others.some((p) => p.instrument === 'drums');
    const melodic = others.some((p) => p.instrument !== 'drums');
    const hits = $('hit-strip');
    const notes = $('note-strip');
    hits.hidden = drums || !drummers;
    notes.hidden = !drums || !melodic;
    if (!hits.children.length) {
      hits.replaceChildren(
        ...DRUM_PADS.map((pad) => {
          const cell = document.createElement('span');
          cell.className = 'hit-cell';
          cell.dataset.note = String(pad.note);
          cell.dataset.testid = `hit-${pad.id}`;
          cell.textContent = pad.short;
          cell.title = pad.label;
          return cell;
        }),
      );
    }
    if (!notes.children.length) {
      const cells = [];
      for (let n = STRIP_LOW; n <= STRIP_HIGH; n++) {
        const cell = document.createElement('span');
        cell.className = `strip-key ${BLACK.has(n % 12) ? 'black' : 'white'}`;
        cell.dataset.note = String(n);
        cell.dataset.testid = `strip-${n}`;
        cell.title = noteName(n);
        cells.push(cell);
      }
      notes.replaceChildren(...cells);
    }
  }

  function stripCell(note) {
    const n = Math.min(STRIP_HIGH, Math.max(STRIP_LOW, note));
    return $('note-strip').querySelector(`[data-note="${n}"]`);
  }

  function paintNote(note) {
    const list = holders.get(note) || [];
    const top = list[list.length - 1];
    // On your keys when you show keys (a drummer's pads are for drum hits).
    if (!playArea.isDrums()) {
      if (top !== undefined) playArea.paintRemote(note, hue(top));
      else playArea.paint(note);
    }
    const cell = stripCell(note);
    if (cell) {
      const any = [...holders.entries()].filter(([n, l]) => l.length && stripCell(n) === cell);
      const last = any.length ? any[any.length - 1][1].at(-1) : undefined;
      cell.classList.toggle('lit', last !== undefined);
      if (last !== undefined) cell.style.setProperty('--hue', hue(last));
    }
  }

  /** A remote melodic note starts sounding. */
  function noteOn(senderId, note) {
    const list = holders.get(note) || [];
    list.push(senderId);
    holders.set(note, list);
    paintNote(note);
    flashLegend(senderId);
  }

  /** A remote melodic note stops. */
  function noteOff(senderId, note) {
    const list = holders.get(note) || [];
    const i = list.lastIndexOf(senderId);
    if (i >= 0) list.splice(i, 1);
    if (!list.length) holders.delete(note);
    paintNote(note);
  }

  /** A remote drum hit. */
  function hit(senderId, note) {
    flashLegend(senderId);
    const h = hue(senderId);
    const el = playArea.isDrums()
      ? $('pads').querySelector(`[data-note="${drumPadFor(note).note}"]`)
      : $('hit-strip').querySelector(`[data-note="${drumPadFor(note).note}"]`);
    if (!el) return;
    el.style.setProperty('--hue', h);
    el.dataset.lastHue = String(h);
    restartAnimation(el, 'remote-hit');
  }

  /** Forgets every remote note (the keys go dark). */
  function clear() {
    const notes = [...holders.keys()];
    holders.clear();
    for (const n of notes) paintNote(n);
  }

  client.on('room', () => renderLegend());
  roster.onChange(() => renderLegend());

  return { renderLegend, renderStrips, noteOn, noteOff, hit, clear };
}
