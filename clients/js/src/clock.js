// clock.js: the local clocks and the estimate of the server's clock
// (docs/protocol.md §7).
//
// Owns: `now` (monotonic ms, for timeouts), `localNow` (Unix ms read from the
// monotonic clock), and ClockEstimator, the NTP-style offset estimate from
// ping exchanges. Pure arithmetic over the samples it is given. Does not own:
// sending pings or deciding which pongs are samples (client.js).

/** A monotonic clock in milliseconds (wall-clock jumps must not fake a dead link). */
export const now = () => (globalThis.performance ? globalThis.performance.now() : Date.now());

/**
 * The local clock the room-clock estimate is against: Unix time in ms, read
 * from the monotonic clock (`performance.timeOrigin + performance.now()`), so
 * it never jumps with the wall clock, as the server's own clock never does.
 */
export function localNow() {
  const perf = globalThis.performance;
  if (perf && Number.isFinite(perf.timeOrigin)) return perf.timeOrigin + perf.now();
  return Date.now();
}

// The estimate mirrors the Rust client's `ClockEstimator`
// (crates/jam-client/src/clock.rs) rule for rule.

/** Clock samples kept (the oldest go first). */
const CLOCK_KEEP = 16;
/** Samples whose round trip exceeds the best by more than this, or by more than half the best, do not count. */
const CLOCK_MARGIN_MS = 1;

/**
 * The offset of the server's clock from the local one (`localNow()`),
 * estimated NTP-style from `clock:ping` exchanges: of the last 16 samples,
 * those whose round trip is within max(1 ms, half the best) of the best are
 * kept, and the median of their offsets is taken. The error bound is half the
 * best round trip: the pong can have spent at most that long on either leg.
 */
export class ClockEstimator {
  constructor() {
    this._samples = [];
    this._offsetMs = null;
    this._rttMs = null;
  }

  /**
   * Adds a sample: a ping sent at local `t0`, answered with `serverTime`,
   * received at local `t1`. Returns `{ rttMs, offsetMs }` of this exchange.
   */
  add(t0, serverTime, t1) {
    const sample = { rttMs: Math.max(0, t1 - t0), offsetMs: serverTime - (t0 + t1) / 2 };
    if (this._samples.length === CLOCK_KEEP) this._samples.shift();
    this._samples.push(sample);
    this._estimate();
    return { ...sample };
  }

  _estimate() {
    let best = Infinity;
    for (const s of this._samples) best = Math.min(best, s.rttMs);
    const margin = Math.max(CLOCK_MARGIN_MS, best / 2);
    const offsets = this._samples
      .filter((s) => s.rttMs <= best + margin)
      .map((s) => s.offsetMs)
      .sort((a, b) => a - b);
    const mid = offsets.length >> 1;
    this._rttMs = best;
    this._offsetMs = offsets.length % 2 === 1 ? offsets[mid] : (offsets[mid - 1] + offsets[mid]) / 2;
  }

  /** Forgets every sample (a new connection may take another path). */
  reset() {
    this._samples = [];
    this._offsetMs = null;
    this._rttMs = null;
  }

  /** The estimated offset, server minus local, ms; null before the first sample. */
  get offsetMs() {
    return this._offsetMs;
  }

  /** The best round trip among the samples kept, ms; null before the first sample. */
  get rttMs() {
    return this._rttMs;
  }

  /** How far off `offsetMs` may be: half the best round trip, ms; null before the first sample. */
  get errorMs() {
    return this._rttMs === null ? null : this._rttMs / 2;
  }

  /** How many samples the estimate rests on (at most 16). */
  get sampleCount() {
    return this._samples.length;
  }

  /** The samples kept, oldest first: `{ rttMs, offsetMs }`. */
  get samples() {
    return this._samples.map((s) => ({ ...s }));
  }

  /** The local clock the estimate is against (see `localNow`). */
  localNow() {
    return localNow();
  }

  /** The server's clock now, by the estimate; null before the first sample. */
  serverNow() {
    return this._offsetMs === null ? null : localNow() + this._offsetMs;
  }

  /** The server time of local time `local`; null before the first sample. */
  toServerTime(local) {
    return this._offsetMs === null ? null : local + this._offsetMs;
  }

  /** The local time (as `localNow()` reads it) of server time `server`; null before the first sample. */
  toLocalTime(server) {
    return this._offsetMs === null ? null : server - this._offsetMs;
  }
}
