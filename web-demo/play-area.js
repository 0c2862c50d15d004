// play-area.js: the on-screen keyboard and drum pads.
//
// Owns: building the keyboard (from `state.base`: two octaves and the top C
// where the keys can be at least MIN_WHITE_PX wide, else one octave and the
// top C; the octave buttons move it) or the drum pads (for drums), the note
// names and computer-key hints drawn on them, the hint under them (the keys
// that play what is shown), lighting held notes, and where focus lands in
// them. Does not own: what pressing a key
// does (input.js) or which notes are held (voices.js keeps `state.localHeld`
// and `state.remoteHeld`, read here to light keys).

import { DRUM_PADS, drumPadFor, noteName } from './audio.js';
import { $, restartAnimation } from './dom.js';

/** Computer keys, by physical position, to semitones above the octave's C (or to pads, in order). */
export const DAW_KEYS = ['KeyA', 'KeyW', 'KeyS', 'KeyE', 'KeyD', 'KeyF', 'KeyT', 'KeyG', 'KeyY', 'KeyH', 'KeyU', 'KeyJ', 'KeyK'];
/** What each of `DAW_KEYS` shows on the key it plays. */
const DAW_LABELS = ['A', 'W', 'S', 'E', 'D', 'F', 'T', 'G', 'Y', 'H', 'U', 'J', 'K'];
const BLACK = new Set([1, 3, 6, 8, 10]);
/** Two octaves and the top C, or one octave and the top C on a narrow screen. */
const KEY_COUNTS = [25, 13];
/** The narrowest a white key may be (a fingertip on a phone). */
const MIN_WHITE_PX = 34;
const LETTERS = ['C', '', 'D', '', 'E', 'F', '', 'G', '', 'A', '', 'B'];

/**
 * Reads `state.instrument` (keys or pads), `state.base` and the held-note
 * maps; writes `state.keyCount` (how many keys the keyboard shows).
 */
export function createPlayArea({ state }) {
  function isDrums() {
    return state.instrument === 'drums';
  }

  /** Shows the keyboard or the pads, whichever the instrument plays. */
  function render() {
    const drums = isDrums();
    $('keyboard').hidden = drums;
    $('pads').hidden = !drums;
    $('octave-controls').hidden = drums;
    renderHint();
    if (drums) renderPads();
    else renderKeyboard();
  }

  function kbd(text) {
    const k = document.createElement('kbd');
    k.textContent = text;
    return k;
  }

  /** The hint lists the computer keys of what is shown: the pads' or the piano's. */
  function renderHint() {
    const hint = $('hint');
    if (isDrums()) {
      const parts = ['Play the pads with the mouse or touch, or your computer keyboard: '];
      DRUM_PADS.forEach((pad, i) => {
        parts.push(kbd(DAW_LABELS[i]), ` ${pad.label}${i < DRUM_PADS.length - 1 ? ', ' : '.'}`);
      });
      hint.replaceChildren(...parts);
    } else {
      const count = Math.min(DAW_LABELS.length, state.keyCount || KEY_COUNTS[0]);
      const parts = ['Play with the mouse or touch, or your computer keyboard: '];
      for (let i = 0; i < count; i++) parts.push(kbd(DAW_LABELS[i]), ' ');
      parts.push('; octave ', kbd('Z'), ' / ', kbd('X'), '.');
      hint.replaceChildren(...parts);
    }
  }

  /** How many keys fit: two octaves when each white key gets MIN_WHITE_PX. */
  function fittingKeyCount() {
    const width = $('keyboard').clientWidth || $('keyboard').parentElement.clientWidth || 1000;
    return width / 15 >= MIN_WHITE_PX ? KEY_COUNTS[0] : KEY_COUNTS[1];
  }

  function renderKeyboard() {
    const kb = $('keyboard');
    kb.replaceChildren();
    const count = fittingKeyCount();
    state.keyCount = count;
    kb.dataset.keyCount = String(count);
    // Two octaves from a high octave would pass the top MIDI note: start an octave lower.
    while (state.base + count - 1 > 127) state.base -= 12;
    kb.setAttribute(
      'aria-label',
      `Keyboard, ${count > 13 ? 'two octaves' : 'one octave'}. Arrow keys move, Space plays; or use the computer keys A W S E …, and Z / X for the octave.`,
    );
    renderHint();
    const whites = [];
    for (let i = 0; i < count; i++) if (!BLACK.has(i % 12)) whites.push(i);
    kb.style.setProperty('--whites', whites.length);
    let whiteIndex = 0;
    for (let i = 0; i < count; i++) {
      const note = state.base + i;
      const black = BLACK.has(i % 12);
      const key = document.createElement('button');
      key.type = 'button';
      key.className = `key ${black ? 'black' : 'white'}`;
      key.dataset.note = String(note);
      key.dataset.testid = `key-${note}`;
      key.tabIndex = i === 0 ? 0 : -1;
      key.setAttribute('aria-label', noteName(note));
      key.setAttribute('aria-pressed', 'false');
      if (black) {
        // Black keys sit on the line between two white keys.
        key.style.setProperty('--pos', whiteIndex);
      } else {
        key.style.setProperty('--pos', whiteIndex);
        whiteIndex++;
      }
      if (i < DAW_LABELS.length) {
        const hint = document.createElement('span');
        hint.className = 'key-hint';
        hint.setAttribute('aria-hidden', 'true');
        hint.textContent = DAW_LABELS[i];
        key.append(hint);
      }
      if (!black) {
        // Every white key says which note it is; the Cs say their octave too.
        const label = document.createElement('span');
        label.className = i % 12 === 0 ? 'key-name key-c' : 'key-name';
        label.setAttribute('aria-hidden', 'true');
        label.textContent = i % 12 === 0 ? noteName(note) : LETTERS[((note % 12) + 12) % 12];
        key.append(label);
      }
      kb.append(key);
    }
    $('octave-label').textContent = `${noteName(state.base)}–${noteName(state.base + count - 1)}`;
    for (const note of new Set([...state.localHeld.keys(), ...state.remoteHeld.keys()])) paint(note);
    paintBeyond();
  }

  function renderPads() {
    const pads = $('pads');
    pads.replaceChildren(
      ...DRUM_PADS.map((pad, i) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = `pad pad-${pad.id}`;
        b.dataset.note = String(pad.note);
        b.dataset.testid = `pad-${pad.id}`;
        b.setAttribute('aria-label', `${pad.label} (key ${DAW_LABELS[i]})`);
        const label = document.createElement('span');
        label.textContent = pad.label;
        const hint = document.createElement('span');
        hint.className = 'key-hint';
        hint.setAttribute('aria-hidden', 'true');
        hint.textContent = DAW_LABELS[i];
        b.append(label, hint);
        return b;
      }),
    );
  }

  function focus() {
    const first = isDrums() ? $('pads').querySelector('.pad') : $('keyboard').querySelector('.key[tabindex="0"]');
    if (first) first.focus({ preventScroll: true });
  }

  function elementForNote(note) {
    const area = isDrums() ? $('pads') : $('keyboard');
    if (isDrums()) note = drumPadFor(note).note;
    return area.querySelector(`[data-note="${note}"]`);
  }

  /** note -> the hue it is lit in for others (kept so a rebuilt keyboard keeps the colours) */
  const remoteHues = new Map();

  /** Lights `note` as held here, held by others, both or neither. */
  function paint(note) {
    const remote = (state.remoteHeld.get(note) || 0) > 0;
    if (!remote) remoteHues.delete(note);
    if (!isDrums()) paintBeyond();
    const el = elementForNote(note);
    if (!el) return;
    const local = (state.localHeld.get(note) || 0) > 0;
    if (remote && remoteHues.has(note)) el.style.setProperty('--remote-hue', remoteHues.get(note));
    el.classList.toggle('active', local);
    el.classList.toggle('remote', remote);
    el.setAttribute('aria-pressed', String(local));
  }

  /** Lights `note` in the colour of the participant whose note it is. */
  function paintRemote(note, hue) {
    remoteHues.set(note, hue);
    paint(note);
  }

  /**
   * Notes others hold below or above the keys shown light the octave button
   * that leads to them, in the player's colour.
   */
  function paintBeyond() {
    const low = state.base;
    const high = state.base + (state.keyCount || 25) - 1;
    for (const [id, beyond] of [
      ['octave-down', (n) => n < low],
      ['octave-up', (n) => n > high],
    ]) {
      const notes = [...remoteHues.keys()].filter((n) => beyond(n) && (state.remoteHeld.get(n) || 0) > 0);
      const button = $(id);
      button.classList.toggle('remote-beyond', notes.length > 0);
      if (notes.length) button.style.setProperty('--hue', remoteHues.get(notes[notes.length - 1]));
    }
  }

  /** Drums are one-shots: lights the pad briefly. */
  function hit(note) {
    const el = elementForNote(note);
    if (el) restartAnimation(el, 'hit');
  }

  // A phone turned on its side, a window resized: refit the keys when their
  // count changes (before the next frame is drawn).
  new ResizeObserver(() => {
    if (state.view === 'session' && !isDrums() && fittingKeyCount() !== state.keyCount) renderKeyboard();
  }).observe($('keyboard'));

  return { isDrums, render, renderKeyboard, focus, paint, paintRemote, hit };
}
