// input.js: the ways a player plays.
//
// Owns: pointer input (mouse, touch, pen) on the keys and pads, the computer
// keyboard (arrow keys and Space over the on-screen keys, the A W S E … row, Z
// and X for the octave), the octave buttons, Web MIDI keyboards, and which key,
// pointer or MIDI note holds which note. Does not own: what a note does once
// pressed (voices.js) or how the keys are drawn (play-area.js).

import { DRUM_PADS } from './audio.js';
import { $ } from './dom.js';
import { DAW_KEYS } from './play-area.js';

/**
 * Reads `state.view` (the computer keyboard plays only in a session),
 * `state.instrument` through `playArea`, and writes `state.base` (the octave).
 */
export function createInput({ state, synth, playArea, voices }) {
  /** computer key code -> note it started */
  const keysDown = new Map();
  /** pointer id -> note */
  const pointers = new Map();

  /** Lets go of every note the player holds, and forgets what held them. */
  function releaseAll() {
    voices.releaseAllLocal();
    keysDown.clear();
    pointers.clear();
  }

  function shiftOctave(delta) {
    const next = state.base + 12 * delta;
    if (next < 12 || next + (state.keyCount || 25) - 1 > 127) return;
    releaseAll();
    state.base = next;
    playArea.renderKeyboard();
  }

  $('octave-down').addEventListener('click', () => shiftOctave(-1));
  $('octave-up').addEventListener('click', () => shiftOctave(1));

  // --- pointer (mouse, touch, pen) ----------------------------------------------

  function noteFromEvent(e) {
    const el = e.target.closest('[data-note]');
    return el ? Number(el.dataset.note) : null;
  }

  for (const area of [$('keyboard'), $('pads')]) {
    area.addEventListener('pointerdown', (e) => {
      const note = noteFromEvent(e);
      if (note === null || e.button > 0) return;
      e.preventDefault();
      // Touch captures the pointer on its first target; release it so a slide plays the next keys.
      if (e.target.hasPointerCapture && e.target.hasPointerCapture(e.pointerId)) e.target.releasePointerCapture(e.pointerId);
      const velocity = e.pressure && e.pointerType === 'pen' ? Math.round(40 + 87 * e.pressure) : 100;
      pointers.set(e.pointerId, note);
      voices.localOn(note, velocity);
    });
    area.addEventListener('pointerover', (e) => {
      if (!pointers.has(e.pointerId) || playArea.isDrums()) return;
      const note = noteFromEvent(e);
      const old = pointers.get(e.pointerId);
      if (note === null || note === old) return;
      voices.localOff(old);
      pointers.set(e.pointerId, note);
      voices.localOn(note);
    });
    area.addEventListener('pointerleave', (e) => pointerEnd(e));
    // Long-press on touch screens opens menus otherwise.
    area.addEventListener('contextmenu', (e) => e.preventDefault());
  }

  function pointerEnd(e) {
    if (!pointers.has(e.pointerId)) return;
    const note = pointers.get(e.pointerId);
    pointers.delete(e.pointerId);
    voices.localOff(note);
  }

  window.addEventListener('pointerup', pointerEnd);
  window.addEventListener('pointercancel', pointerEnd);

  // --- computer keyboard ----------------------------------------------------------

  /** Input types that take typed letters (a slider, a checkbox or a read-only field do not). */
  const TEXT_TYPES = new Set(['text', 'search', 'email', 'url', 'tel', 'password', 'number']);

  /**
   * Whether the computer key is meant for a field being typed in (the name,
   * the chat, the tempo). A read-only field such as the share link takes no
   * letters, so the playing keys still play there.
   */
  function typingInField(target) {
    if (!(target instanceof HTMLElement)) return false;
    if (target.isContentEditable || target.tagName === 'SELECT') return true;
    if (target.tagName === 'TEXTAREA') return !target.readOnly;
    if (target.tagName === 'INPUT') return TEXT_TYPES.has(target.type) && !target.readOnly;
    return false;
  }

  // Arrow keys move focus between on-screen keys; Space and Enter play the focused one.
  for (const area of [$('keyboard'), $('pads')]) {
    area.addEventListener('keydown', (e) => {
      const keys = [...area.querySelectorAll('[data-note]')];
      const i = keys.indexOf(document.activeElement);
      if (i < 0) return;
      let next = null;
      if (e.key === 'ArrowRight' || e.key === 'ArrowUp') next = keys[Math.min(keys.length - 1, i + 1)];
      else if (e.key === 'ArrowLeft' || e.key === 'ArrowDown') next = keys[Math.max(0, i - 1)];
      else if (e.key === 'Home') next = keys[0];
      else if (e.key === 'End') next = keys[keys.length - 1];
      if (next) {
        e.preventDefault();
        for (const k of keys) k.tabIndex = -1;
        next.tabIndex = 0;
        next.focus();
        return;
      }
      if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) {
        e.preventDefault();
        const note = Number(keys[i].dataset.note);
        keysDown.set(`focus:${e.key}`, note);
        voices.localOn(note);
      }
    });
    area.addEventListener('keyup', (e) => {
      const id = `focus:${e.key}`;
      if (keysDown.has(id)) {
        e.preventDefault();
        voices.localOff(keysDown.get(id));
        keysDown.delete(id);
      }
    });
  }

  document.addEventListener('keydown', (e) => {
    if (state.view !== 'session' || e.ctrlKey || e.metaKey || e.altKey || typingInField(e.target)) return;
    if (e.code === 'KeyZ' || e.code === 'KeyX') {
      if (!e.repeat && !playArea.isDrums()) shiftOctave(e.code === 'KeyZ' ? -1 : 1);
      e.preventDefault();
      return;
    }
    const index = DAW_KEYS.indexOf(e.code);
    if (index < 0) return;
    e.preventDefault();
    if (e.repeat || keysDown.has(e.code)) return;
    let note;
    if (playArea.isDrums()) {
      if (index >= DRUM_PADS.length) return;
      note = DRUM_PADS[index].note;
    } else {
      note = state.base + index;
    }
    // Keys past the ones shown (one octave on a phone) still play.
    keysDown.set(e.code, note);
    voices.localOn(note, e.shiftKey ? 127 : 100);
  });

  document.addEventListener('keyup', (e) => {
    if (!keysDown.has(e.code)) return;
    const note = keysDown.get(e.code);
    keysDown.delete(e.code);
    voices.localOff(note);
  });

  // A key released while the window had no focus never sends keyup.
  window.addEventListener('blur', () => releaseAll());

  // --- Web MIDI ---------------------------------------------------------------------

  let midiAccess = null;

  function midiSupported() {
    return typeof navigator.requestMIDIAccess === 'function';
  }

  /** Offers the MIDI button, or says which MIDI inputs play (or why none can). */
  function renderMidiStatus() {
    const button = $('midi');
    const status = $('midi-status');
    if (!midiSupported()) {
      button.hidden = true;
      status.textContent = 'MIDI keyboards: not supported by this browser';
      return;
    }
    if (!midiAccess) {
      button.hidden = false;
      status.textContent = '';
      return;
    }
    button.hidden = true;
    const names = [...midiAccess.inputs.values()].map((i) => i.name || 'MIDI input');
    status.textContent = names.length ? `MIDI: ${names.join(', ')}` : 'MIDI: plug in a keyboard';
  }

  function handleMidi(e) {
    const [status, note, velocity] = e.data;
    const kind = status & 0xf0;
    if (kind === 0x90 && velocity > 0) voices.localOn(note, velocity);
    else if (kind === 0x80 || (kind === 0x90 && velocity === 0)) voices.localOff(note);
  }

  function attachMidiInputs() {
    for (const input of midiAccess.inputs.values()) input.onmidimessage = handleMidi;
    renderMidiStatus();
  }

  $('midi').addEventListener('click', async () => {
    synth.wake();
    try {
      midiAccess = await navigator.requestMIDIAccess();
      midiAccess.onstatechange = attachMidiInputs;
      attachMidiInputs();
    } catch (err) {
      $('midi-status').textContent = `MIDI not available: ${err.message || err.name}`;
    }
  });

  // Any gesture may start the audio (browsers require one).
  for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, () => synth.wake(), { capture: true, passive: true });

  return { releaseAll, renderMidiStatus };
}
