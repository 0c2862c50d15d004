// metronome.js: the room's beat, heard.
//
// Owns: the metronome (on/off, kept for this tab so a reload keeps it; the
// volume, kept in localStorage; an accented downbeat) and scheduling
// its clicks: a tick every TICK_MS looks LOOKAHEAD_MS ahead and starts, on the
// audio clock, each click of a room beat in that window, at the beat's server
// time converted to local time (jam-client.js's clock estimate) and then to
// the audio clock (audio-clock.js). Every page does the same sums from the
// same tempo, so every player's click falls on the same server time. A tempo
// change is announced at least 250 ms before it takes effect (docs/protocol.md
// section 9), more than the look-ahead, so no click is ever scheduled by the
// wrong tempo. Does not own: the tempo (jam-client.js keeps it, tempo.js
// shows and sets it) or the click's sound (audio.js).

import { $, loadJson, loadSession, storeJson, storeSession } from './dom.js';

const TICK_MS = 25;
/** Beyond the output latency (tens of ms) the audio clock runs ahead by. */
const LOOKAHEAD_MS = 150;
/** A beat this late when its tick came is skipped: a late click is worse than none. */
const LATE_MS = 5;
const KEEP = 256;

const load = (key, fallback) => loadJson(`jam.metronome.${key}`, fallback);
const store = (key, value) => storeJson(`jam.metronome.${key}`, value);
/** Where a reload finds whether the metronome was on (this tab only: a new tab starts quiet). */
const ON_KEY = 'jam.metronome.on';

export function createMetronome({ client, synth, audioClock }) {
  let on = false;
  let level = Number(load('level', 0.6));
  /** the server time of the last beat scheduled */
  let last = null;
  let timer = null;
  /** clicks scheduled, newest last: `{ beat, serverTime, audioTime, accent, bpm, beatsPerBar, bar }` */
  const clicks = [];

  function tick() {
    audioClock.sample();
    if (!on || !client.room) return;
    const now = client.serverNow();
    if (now === null || client.clock.offsetMs === null || !audioClock.ready()) return;
    let after = last !== null && last >= now - LATE_MS ? last : now - LATE_MS;
    for (;;) {
      const t = client.nextBeatTime(after);
      if (t === null || t > now + LOOKAHEAD_MS) break;
      after = t;
      last = t;
      const bar = client.barAt(t);
      if (!bar) break;
      const pos = bar.beatInBar;
      const accent = Math.min(pos, bar.beatsPerBar - pos) < 1e-3;
      const audioTime = audioClock.toAudioTime(client.clock.toLocalTime(t));
      // Too late to be heard on the beat (the output takes its time): skip it.
      if (audioTime < audioClock.earliest()) continue;
      synth.click(audioTime, { accent, level });
      clicks.push({ beat: Math.round(bar.beat), serverTime: t, audioTime, accent, bpm: bar.tempo.bpm, beatsPerBar: bar.beatsPerBar, bar: bar.bar });
      if (clicks.length > KEEP) clicks.shift();
    }
  }

  /** `wake`: a gesture turned it on, so the audio may start now. */
  function setOn(next, { wake = true } = {}) {
    on = !!next;
    last = null;
    storeSession(ON_KEY, on);
    // Browsers start audio only after a gesture: after a reload the clicks
    // begin with the first touch or key (input.js wakes the audio on any).
    if (on && wake) synth.wake();
    const button = $('metronome-toggle');
    button.setAttribute('aria-pressed', String(on));
    button.textContent = on ? 'Metronome on' : 'Metronome off';
    button.classList.toggle('on', on);
  }

  $('metronome-toggle').addEventListener('click', () => setOn(!on));
  const slider = $('metronome-volume');
  slider.value = String(Math.round(level * 100));
  slider.addEventListener('input', () => {
    level = Number(slider.value) / 100;
    store('level', level);
  });

  if (loadSession(ON_KEY, false) === true) setOn(true, { wake: false });

  // The scheduler runs while the page lives; a tick without work costs nothing.
  timer = setInterval(tick, TICK_MS);

  return {
    setOn,
    clicks,
    get on() {
      return on;
    },
    stop: () => clearInterval(timer),
  };
}
