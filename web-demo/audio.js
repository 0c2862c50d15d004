// audio.js: the sounds of the JamSession page, made with Web Audio.
//
// Owns: one AudioContext, a simple voice per instrument (piano, synth, bass,
// organ), synthesised drums and the metronome's click, each started at a given
// time on the audio clock (now by default) into a given node (the master bus
// by default). Does not own: which notes play, when or why (voices.js,
// playout.js, metronome.js), per-player levels (mixer.js) or how the audio
// clock maps to the page's clock (audio-clock.js).

/** Instruments the page offers, in display order. */
export const INSTRUMENTS = [
  { id: 'piano', label: 'Piano' },
  { id: 'synth', label: 'Synth' },
  { id: 'bass', label: 'Bass' },
  { id: 'organ', label: 'Organ' },
  { id: 'drums', label: 'Drums' },
];

/** Drum pads: General MIDI percussion notes, in pad order; `short` fits a narrow strip. */
export const DRUM_PADS = [
  { note: 36, id: 'kick', label: 'Kick', short: 'Kick' },
  { note: 38, id: 'snare', label: 'Snare', short: 'Snare' },
  { note: 42, id: 'hat', label: 'Hi-hat', short: 'Hat' },
  { note: 46, id: 'openhat', label: 'Open hat', short: 'Open' },
  { note: 39, id: 'clap', label: 'Clap', short: 'Clap' },
  { note: 45, id: 'lowtom', label: 'Low tom', short: 'Tom L' },
  { note: 50, id: 'hitom', label: 'High tom', short: 'Tom H' },
  { note: 49, id: 'crash', label: 'Crash', short: 'Crash' },
];

/** The pad a MIDI note plays: its own pad when it has one, else one by position. */
export function drumPadFor(note) {
  return DRUM_PADS.find((p) => p.note === note) || DRUM_PADS[((note % DRUM_PADS.length) + DRUM_PADS.length) % DRUM_PADS.length];
}

/** Frequency of a MIDI note (A4 = 69 = 440 Hz). */
export function midiToHz(note) {
  return 440 * 2 ** ((note - 69) / 12);
}

const NOTE_NAMES = ['C', 'C♯', 'D', 'D♯', 'E', 'F', 'F♯', 'G', 'G♯', 'A', 'A♯', 'B'];

/** "C4", "F♯3": the name of a MIDI note. */
export function noteName(note) {
  return `${NOTE_NAMES[note % 12]}${Math.floor(note / 12) - 1}`;
}

export class Synth {
  constructor() {
    this.ctx = null;
    this.out = null;
    this.noise = null;
  }

  /**
   * Creates or wakes the AudioContext. Browsers let it start only after a
   * user gesture, so the page calls this on every gesture; until then notes
   * are silent but everything else works.
   */
  wake() {
    if (!this.ctx) {
      const AC = globalThis.AudioContext || globalThis.webkitAudioContext;
      if (!AC) return null;
      this.ctx = new AC({ latencyHint: 'interactive' });
      const comp = this.ctx.createDynamicsCompressor();
      comp.threshold.value = -12;
      comp.ratio.value = 6;
      this.out = this.ctx.createGain();
      this.out.gain.value = 0.5;
      this.out.connect(comp).connect(this.ctx.destination);
      this.noise = this._makeNoise();
    }
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    return this.ctx;
  }

  _makeNoise() {
    const len = this.ctx.sampleRate;
    const buf = this.ctx.createBuffer(1, len, this.ctx.sampleRate);
    const data = buf.getChannelData(0);
    for (let i = 0; i < len; i++) data[i] = Math.random() * 2 - 1;
    return buf;
  }

  /**
   * Starts a note; returns a voice with `stop(when?)`. `when` is a time on the
   * audio clock (seconds, `ctx.currentTime`'s scale; now when missing or past),
   * `dest` the node it plays into (the master bus by default). Drums are
   * one-shots whose `stop()` does nothing.
   */
  noteOn(instrument, note, velocity = 100, { when, dest } = {}) {
    const ctx = this.ctx || this.wake();
    if (!ctx) return { stop() {} };
    const v = Math.max(0.05, Math.min(1, velocity / 127));
    this._t = Math.max(ctx.currentTime, Number.isFinite(when) ? when : 0);
    this._dest = dest || this.out;
    switch (instrument) {
      case 'drums':
        this._drum(drumPadFor(note).id, v);
        return { stop() {} };
      case 'synth':
        return this._synth(note, v);
      case 'bass':
        return this._bass(note, v);
      case 'organ':
        return this._organ(note, v);
      default:
        return this._piano(note, v);
    }
  }

  /**
   * The metronome's click at audio time `when`: a short tone, higher and louder
   * on the downbeat (`accent`), at `level` (0 to 1).
   */
  click(when, { accent = false, level = 0.6 } = {}) {
    const ctx = this.ctx;
    if (!ctx || level <= 0) return;
    const t = Math.max(ctx.currentTime, when);
    const o = ctx.createOscillator();
    o.type = 'square';
    o.frequency.value = accent ? 1760 : 1175;
    const g = ctx.createGain();
    const peak = Math.min(1, level) * (accent ? 0.5 : 0.3);
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(peak, t + 0.001);
    g.gain.exponentialRampToValueAtTime(0.0005, t + 0.05);
    o.connect(g).connect(this.out);
    o.start(t);
    o.stop(t + 0.06);
  }

  _amp() {
    const g = this.ctx.createGain();
    g.gain.value = 0;
    g.connect(this._dest);
    return g;
  }

  _voice(oscs, amp, release) {
    const ctx = this.ctx;
    let stopped = false;
    return {
      stop: (when) => {
        if (stopped) return;
        stopped = true;
        const t = Math.max(ctx.currentTime, Number.isFinite(when) ? when : 0);
        // A stop in the future keeps the envelope up to then (cancelAndHoldAtTime).
        if (amp.gain.cancelAndHoldAtTime) {
          amp.gain.cancelAndHoldAtTime(t);
        } else {
          amp.gain.cancelScheduledValues(t);
          amp.gain.setValueAtTime(amp.gain.value, t);
        }
        amp.gain.setTargetAtTime(0, t, release / 4);
        for (const o of oscs) o.stop(t + release + 0.05);
      },
    };
  }

  /** A low-pass filter feeding `amp`; the voice sets its cutoff. */
  _lowpassInto(amp) {
    const filter = this.ctx.createBiquadFilter();
    filter.type = 'lowpass';
    filter.connect(amp);
    return filter;
  }

  _piano(note, v) {
    const ctx = this.ctx;
    const t = this._t;
    const f = midiToHz(note);
    const amp = this._amp();
    const filter = this._lowpassInto(amp);
    filter.frequency.value = 1200 + 5000 * v;
    const o1 = ctx.createOscillator();
    o1.type = 'triangle';
    o1.frequency.value = f;
    const o2 = ctx.createOscillator();
    o2.type = 'sine';
    o2.frequency.value = f * 2;
    const g2 = ctx.createGain();
    g2.gain.value = 0.25;
    o1.connect(filter);
    o2.connect(g2).connect(filter);
    const decay = Math.max(0.6, 3 - (note - 48) / 24);
    amp.gain.setValueAtTime(0, t);
    amp.gain.linearRampToValueAtTime(0.6 * v, t + 0.005);
    amp.gain.exponentialRampToValueAtTime(0.001, t + decay);
    o1.start(t);
    o2.start(t);
    o1.stop(t + decay + 0.1);
    o2.stop(t + decay + 0.1);
    return this._voice([o1, o2], amp, 0.25);
  }

  _synth(note, v) {
    return this._filteredVoice(note, v, {
      q: 6,
      cutoff: { from: 600 + 4000 * v, to: 900, seconds: 0.35 },
      oscillators: [
        { type: 'sawtooth', ratio: 1, detune: -7 },
        { type: 'sawtooth', ratio: 1, detune: 7 },
      ],
      envelope: { peak: 0.28 * v, attack: 0.02, sustain: 0.2 * v, decay: 0.2 },
      release: 0.3,
    });
  }
  _bass(note, v) {
    return this._filteredVoice(note, v, {
      q: 3,
      cutoff: { from: 300 + 1500 * v, to: 250, seconds: 0.25 },
      oscillators: [
        { type: 'square', ratio: 1, detune: 0 },
        { type: 'sine', ratio: 0.5, detune: 0 },
      ],
      envelope: { peak: 0.6 * v, attack: 0.004, sustain: 0.4 * v, decay: 0.15 },
      release: 0.12,
    });
  }
  /**
   * A voice of oscillators through a resonant low-pass whose cutoff falls from
   * `cutoff.from` to `cutoff.to` Hz over `cutoff.seconds`, with a quick attack
   * to `envelope.peak` that settles towards `envelope.sustain` (time constant
   * `envelope.decay`); `ratio` scales the note's frequency, `detune` is in cents.
   */
  _filteredVoice(note, v, { q, cutoff, oscillators, envelope, release }) {
    const ctx = this.ctx;
    const t = this._t;
    const f = midiToHz(note);
    const amp = this._amp();
    const filter = this._lowpassInto(amp);
    filter.Q.value = q;
    filter.frequency.setValueAtTime(cutoff.from, t);
    filter.frequency.exponentialRampToValueAtTime(cutoff.to, t + cutoff.seconds);
    const oscs = oscillators.map(({ type, ratio, detune }) => {
      const o = ctx.createOscillator();
      o.type = type;
      o.frequency.value = f * ratio;
      if (detune) o.detune.value = detune;
      o.connect(filter);
      o.start(t);
      return o;
    });
    amp.gain.setValueAtTime(0, t);
    amp.gain.linearRampToValueAtTime(envelope.peak, t + envelope.attack);
    amp.gain.setTargetAtTime(envelope.sustain, t + envelope.attack, envelope.decay);
    return this._voice(oscs, amp, release);
  }

  _organ(note, v) {
    const ctx = this.ctx;
    const t = this._t;
    const f = midiToHz(note);
    const amp = this._amp();
    const oscs = [
      [1, 0.5],
      [2, 0.3],
      [3, 0.15],
      [4, 0.1],
    ].map(([mul, level]) => {
      const o = ctx.createOscillator();
      o.type = 'sine';
      o.frequency.value = f * mul;
      const g = ctx.createGain();
      g.gain.value = level;
      o.connect(g).connect(amp);
      o.start(t);
      return o;
    });
    amp.gain.setValueAtTime(0, t);
    amp.gain.linearRampToValueAtTime(0.35 * v, t + 0.01);
    return this._voice(oscs, amp, 0.08);
  }

  _noiseBurst(t, dur, level, type, freq, q = 1) {
    const ctx = this.ctx;
    const src = ctx.createBufferSource();
    src.buffer = this.noise;
    const filter = ctx.createBiquadFilter();
    filter.type = type;
    filter.frequency.value = freq;
    filter.Q.value = q;
    const g = ctx.createGain();
    g.gain.setValueAtTime(level, t);
    g.gain.exponentialRampToValueAtTime(0.001, t + dur);
    src.connect(filter).connect(g).connect(this._dest);
    src.start(t, Math.random() * 0.5);
    src.stop(t + dur + 0.02);
  }

  _tone(t, from, to, dur, level, type = 'sine') {
    const ctx = this.ctx;
    const o = ctx.createOscillator();
    o.type = type;
    o.frequency.setValueAtTime(from, t);
    o.frequency.exponentialRampToValueAtTime(to, t + dur * 0.8);
    const g = ctx.createGain();
    g.gain.setValueAtTime(level, t);
    g.gain.exponentialRampToValueAtTime(0.001, t + dur);
    o.connect(g).connect(this._dest);
    o.start(t);
    o.stop(t + dur + 0.02);
  }

  _drum(id, v) {
    const t = this._t;
    switch (id) {
      case 'kick':
        this._tone(t, 150, 42, 0.45, 1.1 * v);
        break;
      case 'snare':
        this._tone(t, 220, 160, 0.12, 0.5 * v, 'triangle');
        this._noiseBurst(t, 0.2, 0.7 * v, 'highpass', 1500);
        break;
      case 'hat':
        this._noiseBurst(t, 0.05, 0.5 * v, 'highpass', 7000);
        break;
      case 'openhat':
        this._noiseBurst(t, 0.35, 0.4 * v, 'highpass', 6500);
        break;
      case 'clap':
        for (const dt of [0, 0.012, 0.025]) this._noiseBurst(t + dt, dt === 0.025 ? 0.18 : 0.03, 0.6 * v, 'bandpass', 1200, 2);
        break;
      case 'lowtom':
        this._tone(t, 140, 90, 0.4, 0.8 * v);
        break;
      case 'hitom':
        this._tone(t, 220, 150, 0.3, 0.7 * v);
        break;
      case 'crash':
        this._noiseBurst(t, 1.3, 0.35 * v, 'highpass', 4500);
        break;
      default:
        break;
    }
  }
}
