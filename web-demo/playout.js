// playout.js: when a note from another player sounds here.
//
// Owns: the playout mode ("immediate": a note sounds as it arrives; "steady":
// it sounds a playout delay after it was played, so a phrase keeps its rhythm
// whatever the network did to it on the way here), the delay each sender gets
// (adapted to that sender's recent jitter), the mode control and what it
// says: steady's real delay beside its name (worked out in immediate mode
// too, from the notes heard, so the choice shows its cost before it is made),
// one line on when to choose it, and the per-player delays. Does not own: sounding or drawing the note (voices.js), the clocks
// (jam-client.js for the server's, audio-clock.js for the audio clock).
//
// When a note was played is its `at` (the sender's room-clock time of the
// note, which voices.js puts in every note it sends) when that is within
// MAX_AT_SKEW_MS before the note's `serverTime` (when the server got it),
// else its `serverTime`: `at` leaves out the jitter of the sender's own path
// to the server, `serverTime` is what a sender without `at` gives.
//
// Steady mode, per sender: for every note-on, the delay it would have needed
// (from when it was played to its arrival here, plus the time the audio output
// takes: a sound is heard that long after the earliest time it can be started
// at) is kept for the last WINDOW notes played within WINDOW_MS. The delay is
// the largest of them plus MARGIN_MS. A note that needed more than the delay
// (a new worst case, or this page was busy) raises it at once, and that one
// note is shifted (it is marked `late`); otherwise the delay comes down by at
// most DECAY_MS a note, so a phrase's intervals change by no more than that,
// and it resets when the sender pauses for RESET_AFTER_MS (by when the notes
// were played, not when they arrived: a page that stalled has not heard a
// pause). Note-offs follow the delay and never change it. Each sender's
// server-to-audio mapping is taken when its delay is set and kept while it
// holds (unless it moved by more than REMAP_MS), so clock estimates that move
// by a millisecond do not move the notes of a phrase.

import { $, loadText, storeText } from './dom.js';

const WINDOW = 48;
const WINDOW_MS = 8000;
const MARGIN_MS = 8;
/** How far ahead of the earliest possible start a note must be scheduled to count as on time. */
const SAFETY_MS = 2;
const DECAY_MS = 0.5;
const RESET_AFTER_MS = 2000;
/** How much earlier than its `serverTime` a note's `at` may be (its way to the server, clock error included). */
const MAX_AT_SKEW_MS = 1000;
/** How much later than its `serverTime` a note's `at` may be (the sender's clock error). */
const MAX_AT_AHEAD_MS = 20;
/**
 * A mapping that moved more than this since it was taken is taken again (the
 * audio clock drifts from the system clock over minutes); smaller moves of the
 * clock estimates are noise, and following them would shift the notes.
 */
const REMAP_MS = 15;

const store = (value) => storeText('jam.playout', value);
const load = () => loadText('jam.playout');

export function createPlayout({ client, audioClock, names }) {
  let mode = load() === 'steady' ? 'steady' : 'immediate';
  /** sender id -> { needed: [{ needed, played }], delayMs, mapSec (server s -> audio s), lastPlayed } */
  const senders = new Map();
  /** the same, worked out in immediate mode: what steady would cost (shown, never used to play) */
  const estimates = new Map();

  /** The audio time of server time `t`, by the clocks now (seconds), or null. */
  function serverToAudio(t) {
    const local = client.clock.toLocalTime(t);
    return local === null ? null : audioClock.toAudioTime(local);
  }

  /** When a note was played, in server time: its `at` when plausible, else its `serverTime`. */
  function playedAt({ serverTime, at }) {
    if (typeof at === 'number' && Number.isFinite(at) && at >= serverTime - MAX_AT_SKEW_MS && at <= serverTime + MAX_AT_AHEAD_MS) return at;
    return serverTime;
  }

  /**
   * When a note from `senderId` (`{ serverTime, at }`: when the server got it,
   * and when the sender played it) should sound: `{ audioTime, localMs,
   * delayMs, late }`; `audioTime` and `localMs` null mean now (immediate mode,
   * or nothing to schedule by yet).
   */
  function place(senderId, when, { onset = true } = {}) {
    const now = { audioTime: null, localMs: null, delayMs: null, late: false };
    if (typeof when.serverTime !== 'number') return now;
    const serverTime = playedAt(when);
    audioClock.sample();
    const arrival = client.serverNow();
    const mapNow = serverToAudio(0);
    if (arrival === null || mapNow === null) return now;
    // Immediate: the note sounds now, and the delay steady would take is
    // worked out all the same, so the choice shows what it costs.
    if (mode !== 'steady') {
      if (onset) {
        learn(estimates, senderId, serverTime, mapNow);
        render();
      }
      return now;
    }
    const s = senders.get(senderId);
    // A note's end keeps to the delay its start set: a late "off" ends the note
    // a little late (its time passed: now), rather than moving the next onsets.
    if (!onset) {
      if (!s || s.delayMs === null) return now;
      const at = serverTime + s.delayMs;
      return { audioTime: at / 1000 + s.mapSec, localMs: client.clock.toLocalTime(at), delayMs: s.delayMs, anchor: s.mapSec, late: false };
    }
    const { state, late } = learn(senders, senderId, serverTime, mapNow);
    render();
    const at = serverTime + state.delayMs;
    return {
      audioTime: at / 1000 + state.mapSec,
      localMs: client.clock.toLocalTime(at),
      delayMs: state.delayMs,
      anchor: state.mapSec,
      late,
    };
  }

  /**
   * Takes the note-on of `senderId` played at server time `serverTime` into
   * that sender's delay in `map`; `mapNow` is server s -> audio s now.
   * Returns `{ state, late }`: the sender's state, and whether this note
   * needed more than the delay it found.
   */
  function learn(map, senderId, serverTime, mapNow) {
    let s = map.get(senderId);
    if (!s) {
      s = { needed: [], delayMs: null, mapSec: null, lastPlayed: -Infinity };
      map.set(senderId, s);
    }
    // The delay at which this note would start SAFETY_MS after the earliest it can.
    const needed = (audioClock.earliest() - (serverTime / 1000 + mapNow)) * 1000 + SAFETY_MS;
    s.needed.push({ needed, played: serverTime });
    while (s.needed.length > WINDOW || serverTime - s.needed[0].played > WINDOW_MS) s.needed.shift();
    const target = Math.max(...s.needed.map((n) => n.needed)) + MARGIN_MS;
    let late = false;
    if (s.delayMs !== null && needed > s.delayMs) {
      late = true;
      s.delayMs = target;
      s.mapSec = mapNow;
    } else if (s.delayMs === null || serverTime - s.lastPlayed > RESET_AFTER_MS) {
      s.delayMs = target;
      s.mapSec = mapNow;
    } else if (s.delayMs > target) {
      s.delayMs = Math.max(target, s.delayMs - DECAY_MS);
    }
    if (Math.abs(mapNow - s.mapSec) * 1000 > REMAP_MS) s.mapSec = mapNow;
    s.lastPlayed = Math.max(s.lastPlayed, serverTime);
    return { state: s, late };
  }

  function forget(senderId) {
    senders.delete(senderId);
    estimates.delete(senderId);
    render();
  }

  function setMode(next) {
    mode = next === 'steady' ? 'steady' : 'immediate';
    store(mode);
    senders.clear();
    for (const input of document.querySelectorAll('input[name="playout"]')) input.checked = input.value === mode;
    render();
  }

  /** The delay steady takes (or would take) for the players heard, ms: `[name, ms]` pairs, worst last. */
  function delays() {
    const room = client.room;
    const out = [];
    for (const id of new Set([...senders.keys(), ...estimates.keys()])) {
      // Steady's own delay once it has one; until then what immediate mode worked out.
      const s = (mode === 'steady' && senders.get(id)) || estimates.get(id);
      if (!s || s.delayMs === null || !room || !room.participants.some((p) => p.id === id)) continue;
      out.push([names(id), s.delayMs]);
    }
    return out.sort((a, b) => a[1] - b[1]);
  }

  function render() {
    const el = $('playout-delay');
    el.dataset.mode = mode;
    const known = delays();
    const worst = known.length ? known[known.length - 1][1] : null;
    // Beside "steady": its real delay (measured in either mode), worst player.
    const label = $('playout-steady-delay');
    label.textContent = worst === null ? '' : ` · ${Math.round(worst)} ms`;
    label.dataset.delay = worst === null ? '' : worst.toFixed(1);
    const later = worst === null ? 'a little later' : `${Math.round(worst)} ms later`;
    $('playout-steady-label').title = `Each player's notes keep the rhythm they were played in, ${later}`;
    $('playout-immediate-label').title = "Each note sounds the moment it arrives: least delay, the network's unevenness included";
    $('playout-when').textContent = mode === 'steady'
      ? `Each player's rhythm kept, ${later}. Notes come in evenly? Immediate is quicker.`
      : `Notes sound uneven? Steady keeps each player's rhythm, ${later}.`;
    if (mode !== 'steady') {
      el.textContent = 'notes sound as they arrive';
      el.dataset.delay = '';
      return;
    }
    el.dataset.delay = worst === null ? '' : worst.toFixed(1);
    el.textContent = known.length ? `delay ${known.map(([n, ms]) => `${n} ${Math.round(ms)} ms`).join(', ')}` : 'delay set by the first notes heard';
  }

  for (const input of document.querySelectorAll('input[name="playout"]')) {
    input.checked = input.value === mode;
    input.addEventListener('change', () => input.checked && setMode(input.value));
  }
  client.on('room', () => render());
  render();

  return {
    place,
    forget,
    setMode,
    get mode() {
      return mode;
    },
  };
}
