// tempo.js: the room's shared tempo (docs/protocol.md §9) as arithmetic.
//
// Owns: tempoMath (beat and bar arithmetic of one tempo, the same rules as the
// protocol crate's `Tempo`,
// crates/jam-protocol/src/tempo.rs), parseTempo (a tempo off the wire, checked) and
// TempoTimeline (the tempo over time, with a pending change). No I/O, no clock
// of its own: every function takes the server time it is asked about. Does not
// own: where the tempo comes from or when the page hears of it (client.js).

/**
 * The shared tempo's arithmetic (docs/protocol.md §9) as pure functions of a
 * tempo `{ bpm, beatsPerBar, originTime, originBeat, setBy }` and server times
 * in ms; the server uses the same rules.
 */
export const tempoMath = Object.freeze({
  DEFAULT_BPM: 120,
  DEFAULT_BEATS_PER_BAR: 4,
  MIN_BPM: 20,
  MAX_BPM: 300,
  MAX_BEATS_PER_BAR: 16,
  /** A change takes effect on a bar line at least this long (ms) after the server got it. */
  CHANGE_LEAD_MS: 250,

  /** The default tempo of a room created at server time `created`. */
  defaultAt(created) {
    return { bpm: 120, beatsPerBar: 4, originTime: created, originBeat: 0, setBy: null };
  },

  /** Milliseconds per beat. */
  beatMs(tempo) {
    return 60000 / tempo.bpm;
  },

  /** Milliseconds per bar. */
  barMs(tempo) {
    return (60000 / tempo.bpm) * tempo.beatsPerBar;
  },

  /** The beat (fractional) at server time `t`. */
  beatAt(tempo, t) {
    return tempo.originBeat + (t - tempo.originTime) / (60000 / tempo.bpm);
  },

  /** The server time of beat `beat`. */
  timeOfBeat(tempo, beat) {
    return tempo.originTime + (beat - tempo.originBeat) * (60000 / tempo.bpm);
  },

  /** The first bar line at or after max(t, originTime): `{ time, beat }`. */
  nextBarLine(tempo, t) {
    const bars = Math.max(0, Math.ceil((t - tempo.originTime) / tempoMath.barMs(tempo)));
    const beat = tempo.originBeat + bars * tempo.beatsPerBar;
    return { time: tempoMath.timeOfBeat(tempo, beat), beat };
  },

  /**
   * The tempo after a `tempo:set` to `bpm` / `beatsPerBar` (null or undefined:
   * unchanged) that the server received at `received` from `setBy`: it starts
   * on the first bar line of `tempo`, at or after its origin, that lies at
   * least 250 ms after `received`.
   */
  changed(tempo, bpm, beatsPerBar, received, setBy) {
    const line = tempoMath.nextBarLine(tempo, received + tempoMath.CHANGE_LEAD_MS);
    return {
      bpm,
      beatsPerBar: beatsPerBar ?? tempo.beatsPerBar,
      originTime: line.time,
      originBeat: line.beat,
      setBy,
    };
  },
});

/** A tempo as the server sent it, checked and copied; null when it is not one. */
export function parseTempo(t) {
  if (!t || typeof t !== 'object') return null;
  const { bpm, beatsPerBar, originTime, originBeat, setBy } = t;
  if (!(Number.isFinite(bpm) && bpm > 0) || !(Number.isInteger(beatsPerBar) && beatsPerBar >= 1)) return null;
  if (!Number.isFinite(originTime) || !Number.isFinite(originBeat)) return null;
  return { bpm, beatsPerBar, originTime, originBeat, setBy: typeof setBy === 'string' ? setBy : null };
}

/**
 * Slack for floating point at beat and bar lines, in beats: server times are
 * Unix ms, which a double resolves to about a quarter of a microsecond, so a
 * beat computed at a beat's own time can come out a millionth of a beat short.
 */
const BEAT_EPSILON = 1e-5;

/** Tempos kept in a timeline: the one in effect, what is pending, and a little history. */
const TIMELINE_KEEP = 8;

/**
 * The room's tempo over time: each tempo holds from its `originTime` until
 * the next one's. A change announced by `tempo:changed` is pending until its
 * origin, and the tempo before it applies until then, so beats never jump.
 * Times before the first known tempo are counted by that first tempo.
 */
export class TempoTimeline {
  constructor() {
    /** Tempos by `originTime`, ascending. */
    this._tempos = [];
  }

  /** Forgets everything. */
  clear() {
    this._tempos = [];
  }

  /** Starts over from `tempo` (a fresh seat: nothing earlier is known). */
  reset(tempo) {
    this._tempos = tempo ? [tempo] : [];
  }

  /**
   * Adds the room's newest tempo: it replaces every tempo starting at or after
   * its origin (a change that never took effect) and holds from its origin on.
   */
  apply(tempo) {
    this._tempos = this._tempos.filter((t) => t.originTime < tempo.originTime);
    this._tempos.push(tempo);
    if (this._tempos.length > TIMELINE_KEEP) this._tempos.splice(0, this._tempos.length - TIMELINE_KEEP);
  }

  /** Whether nothing is known. */
  get isEmpty() {
    return this._tempos.length === 0;
  }

  /** The newest tempo known (possibly pending), or null. */
  get latest() {
    return this._tempos.length ? this._tempos[this._tempos.length - 1] : null;
  }

  /** The tempos known, oldest first. */
  get tempos() {
    return this._tempos.map((t) => ({ ...t }));
  }

  _indexAt(t) {
    let i = 0;
    for (let j = 1; j < this._tempos.length; j++) if (this._tempos[j].originTime <= t) i = j;
    return i;
  }

  /** The tempo in effect at server time `t`, or null when none is known. */
  at(t) {
    return this._tempos.length ? this._tempos[this._indexAt(t)] : null;
  }

  /** The first tempo that takes effect after server time `t` (a pending change), or null. */
  pendingAfter(t) {
    return this._tempos.find((x) => x.originTime > t) || null;
  }

  /** The room's beat number (fractional) at server time `t`, or null. */
  beatAt(t) {
    const tempo = this.at(t);
    return tempo ? tempoMath.beatAt(tempo, t) : null;
  }

  /**
   * The server time of the first whole beat after `after` (with a few
   * microseconds' slack, so `t = nextBeatTime(t)` steps beat by beat), across
   * tempo changes. Null when no tempo is known.
   */
  nextBeatTime(after) {
    return this._next(after, 1);
  }

  /** The server time of the first bar line after `after`, across tempo changes, or null. */
  nextBarTime(after) {
    return this._next(after, 0);
  }

  /** The next beat (`everyBeat` 1) or bar line (0) after `after`. */
  _next(after, everyBeat) {
    if (!this._tempos.length) return null;
    let i = this._indexAt(after);
    const tempo = this._tempos[i];
    const step = everyBeat || tempo.beatsPerBar;
    const k = Math.floor((tempoMath.beatAt(tempo, after) - tempo.originBeat) / step + BEAT_EPSILON) + 1;
    let time = tempoMath.timeOfBeat(tempo, tempo.originBeat + k * step);
    // A later tempo that starts (after `after`) no later than that beat wins:
    // its origin is a beat and a bar line of its own.
    while (i + 1 < this._tempos.length && this._tempos[i + 1].originTime <= time + 1e-3) {
      i++;
      time = this._tempos[i].originTime;
    }
    return time;
  }

  /**
   * Where server time `t` falls in its bar: `{ bar, beatInBar, beat,
   * beatsPerBar, barTime, tempo }`, `bar` counting the bar lines
   * `originBeat + bar * beatsPerBar` of the tempo in effect; null when no tempo is known.
   */
  barAt(t) {
    const tempo = this.at(t);
    if (!tempo) return null;
    const beat = tempoMath.beatAt(tempo, t);
    const bar = Math.floor((beat - tempo.originBeat) / tempo.beatsPerBar + BEAT_EPSILON);
    const barBeat = tempo.originBeat + bar * tempo.beatsPerBar;
    return {
      bar,
      beatInBar: Math.max(0, beat - barBeat),
      beat,
      beatsPerBar: tempo.beatsPerBar,
      barTime: tempoMath.timeOfBeat(tempo, barBeat),
      tempo,
    };
  }
}
