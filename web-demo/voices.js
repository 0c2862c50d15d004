// voices.js: notes turned into sound and broadcasts.
//
// Owns: the voices sounding for local notes (and broadcasting them) and for
// notes from the others (heard as `note` broadcasts), how many inputs or
// participants hold each note (`state.localHeld`, `state.remoteHeld`), cutting
// off a remote note whose "off" got lost or whose player dropped out or left,
// and the notes sent / not sent / heard counters (a note played while our link
// is down sounds here but is counted as not sent). Does not own: where notes come from (input.js), how they sound
// (audio.js) or how keys light up (play-area.js).

import { INSTRUMENTS } from './audio.js';
import { $, hueFor } from './dom.js';

/** A remote note longer than this is released anyway (its "off" may have been lost). */
const REMOTE_NOTE_MAX_MS = 8000;

/**
 * Reads `state.instrument` (what local notes play); writes `state.localHeld`
 * and `state.remoteHeld`. `players.flash` counts each note against its player.
 */
export function createVoices({ client, synth, state, playArea, players }) {
  /** local voices by note */
  const localVoices = new Map();
  /** `${senderId}:${note}` -> { voice, timer, note } */
  const remoteVoices = new Map();
  let localCount = 0;
  let unsentCount = 0;
  let remoteCount = 0;

  // --- local ------------------------------------------------------------------

  /** One input presses `note`: sounds it (once, however many inputs hold it) and tells the others. */
  function localOn(note, velocity = 100) {
    if (note < 0 || note > 127) return;
    synth.wake();
    if (playArea.isDrums()) {
      synth.noteOn('drums', note, velocity);
      playArea.hit(note);
    } else {
      const held = state.localHeld.get(note) || 0;
      state.localHeld.set(note, held + 1);
      if (held > 0) return; // already sounding from another input
      const old = localVoices.get(note);
      if (old) old.stop();
      localVoices.set(note, synth.noteOn(state.instrument, note, velocity));
      playArea.paint(note);
    }
    // Offline, the note sounds here but reaches nobody: count it apart.
    if (client.broadcast('note', { type: 'on', note, velocity, instrument: state.instrument })) {
      localCount++;
      $('local-count').textContent = String(localCount);
      if (client.room) players.flash(client.room.userId);
    } else {
      unsentCount++;
      $('unsent-count').textContent = String(unsentCount);
      $('unsent').hidden = false;
    }
  }

  /** One input lets go of `note`: it stops when the last one does. */
  function localOff(note) {
    if (playArea.isDrums()) return; // one-shots need no "off"
    const held = state.localHeld.get(note) || 0;
    if (held <= 0) return;
    if (held > 1) {
      state.localHeld.set(note, held - 1);
      return;
    }
    state.localHeld.delete(note);
    const voice = localVoices.get(note);
    if (voice) voice.stop();
    localVoices.delete(note);
    playArea.paint(note);
    client.broadcast('note', { type: 'off', note, velocity: 0, instrument: state.instrument });
  }

  /** Stops every local note, telling the others. Which inputs held them is input.js's to forget. */
  function releaseAllLocal() {
    for (const note of [...state.localHeld.keys()]) {
      state.localHeld.set(note, 1);
      localOff(note);
    }
    state.localHeld.clear();
  }

  // --- remote -----------------------------------------------------------------

  client.on('event:broadcast', ({ eventName, payload, senderId }, envelope) => {
    if (eventName !== 'note' || !payload || typeof payload !== 'object') return;
    // A note replayed after our own reconnect is seconds late: better unheard.
    if (envelope && envelope.replayed) return;
    const note = Number(payload.note);
    if (!Number.isInteger(note) || note < 0 || note > 127) return;
    const sender = client.room && client.room.participants.find((p) => p.id === senderId);
    const instrument = INSTRUMENTS.some((i) => i.id === payload.instrument)
      ? payload.instrument
      : sender && INSTRUMENTS.some((i) => i.id === sender.instrument)
        ? sender.instrument
        : 'piano';
    if (payload.type === 'on') remoteOn(senderId, note, Number(payload.velocity) || 100, instrument);
    else if (payload.type === 'off') remoteOff(senderId, note);
  });

  function remoteOn(senderId, note, velocity, instrument) {
    remoteCount++;
    $('remote-count').textContent = String(remoteCount);
    players.flash(senderId);
    const key = `${senderId}:${note}`;
    remoteOff(senderId, note);
    const voice = synth.ctx ? synth.noteOn(instrument, note, velocity) : { stop() {} };
    if (instrument === 'drums') {
      if (playArea.isDrums()) playArea.hit(note);
      return;
    }
    const timer = setTimeout(() => remoteOff(senderId, note), REMOTE_NOTE_MAX_MS);
    remoteVoices.set(key, { voice, timer, note });
    state.remoteHeld.set(note, (state.remoteHeld.get(note) || 0) + 1);
    if (!playArea.isDrums()) playArea.paintRemote(note, hueFor(senderId));
  }

  function remoteOff(senderId, note) {
    const key = `${senderId}:${note}`;
    const entry = remoteVoices.get(key);
    if (!entry) return;
    remoteVoices.delete(key);
    clearTimeout(entry.timer);
    entry.voice.stop();
    const held = (state.remoteHeld.get(note) || 1) - 1;
    if (held > 0) state.remoteHeld.set(note, held);
    else state.remoteHeld.delete(note);
    if (!playArea.isDrums()) playArea.paint(note);
  }

  /** Stops the notes of a participant who left. */
  function releaseRemoteFrom(senderId) {
    for (const [key, entry] of [...remoteVoices]) {
      if (key.startsWith(`${senderId}:`)) remoteOff(senderId, entry.note);
    }
  }

  // A player whose connection dropped, or who left, sends no "off" for what they held.
  client.on('session:user-away', ({ userId }) => releaseRemoteFrom(userId));
  client.on('session:user-left', ({ userId }) => releaseRemoteFrom(userId));

  /** Stops every remote note (their "off" may never come). */
  function releaseAllRemote() {
    for (const [key, entry] of [...remoteVoices]) remoteOff(key.slice(0, key.lastIndexOf(':')), entry.note);
  }

  return { localOn, localOff, releaseAllLocal, releaseRemoteFrom, releaseAllRemote };
}
