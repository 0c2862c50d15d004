// play-area.js: the on-screen keyboard and drum pads.
//
// Owns: building the keyboard (two octaves and the top C from `state.base`) or
// the drum pads (for drums), the computer-key hints drawn on them, lighting
// held notes, and where focus lands in them. Does not own: what pressing a key
// does (input.js) or which notes are held (voices.js keeps `state.localHeld`
// and `state.remoteHeld`, read here to light keys).

import { DRUM_PADS, drumPadFor, noteName } from './audio.js';
import { $, restartAnimation } from './dom.js';

/** Computer keys, by physical position, to semitones above the octave's C (or to pads, in order). */
export const DAW_KEYS = ['KeyA', 'KeyW', 'KeyS', 'KeyE', 'KeyD', 'KeyF', 'KeyT', 'KeyG', 'KeyY', 'KeyH', 'KeyU', 'KeyJ', 'KeyK'];
/** What each of `DAW_KEYS` shows on the key it plays. */
const DAW_LABELS = ['A', 'W', 'S', 'E', 'D', 'F', 'T', 'G', 'Y', 'H', 'U', 'J', 'K'];
const BLACK = new Set([1, 3, 6, 8, 10]);
export const KEY_COUNT = 25; // two octaves and the top C

/** Reads `state.instrument` (keys or pads), `state.base` and the held-note maps. */
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
    if (drums) renderPads();
    else renderKeyboard();
  }

  function renderKeyboard() {
    const kb = $('keyboard');
    kb.replaceChildren();
    const whites = [];
    for (let i = 0; i < KEY_COUNT; i++) if (!BLACK.has(i % 12)) whites.push(i);
    kb.style.setProperty('--whites', whites.length);
    let whiteIndex = 0;
    for (let i = 0; i < KEY_COUNT; i++) {
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
      if (i % 12 === 0) {
        const label = document.createElement('span');
        label.className = 'key-name';
        label.setAttribute('aria-hidden', 'true');
        label.textContent = noteName(note);
        key.append(label);
      }
      kb.append(key);
    }
    $('octave-label').textContent = `${noteName(state.base)}–${noteName(state.base + KEY_COUNT - 1)}`;
    for (const note of new Set([...state.localHeld.keys(), ...state.remoteHeld.keys()])) paint(note);
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

  /** Lights `note` as held here, held by others, both or neither. */
  function paint(note) {
    const el = elementForNote(note);
    if (!el) return;
    const local = (state.localHeld.get(note) || 0) > 0;
    const remote = (state.remoteHeld.get(note) || 0) > 0;
    el.classList.toggle('active', local);
    el.classList.toggle('remote', remote);
    el.setAttribute('aria-pressed', String(local));
  }

  /** Lights `note` in the colour of the participant whose note it is. */
  function paintRemote(note, hue) {
    const el = elementForNote(note);
    if (!el) return;
    el.style.setProperty('--remote-hue', hue);
    paint(note);
  }

  /** Drums are one-shots: lights the pad briefly. */
  function hit(note) {
    const el = elementForNote(note);
    if (el) restartAnimation(el, 'hit');
  }

  return { isDrums, render, renderKeyboard, focus, paint, paintRemote, hit };
}
