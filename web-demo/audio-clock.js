// audio-clock.js: where the page's clock and the audio clock meet.
//
// Owns: the mapping between local time (ms, as jam-client.js's `localNow()`
// reads it: `performance.timeOrigin + performance.now()`) and the
// AudioContext's clock (seconds), so that something meant for a server time
// can be started on the audio clock at the moment it is heard. Does not own:
// the AudioContext (audio.js) or the server's clock (jam-client.js).
//
// The mapping comes from `getOutputTimestamp()`, which pairs a context time
// with the performance time its sample leaves the output: the output latency
// is in it, so a sound scheduled for local time L is heard at L. The pairs
// jitter by a fraction of a millisecond; the median of the recent ones is
// used. A browser without it pairs `currentTime` (which moves in steps of a
// render block) with `performance.now()`, keeps the smallest difference (the
// moment right after a step) and adds `outputLatency`.

/** How many recent pairs the mapping rests on. */
const KEEP = 24;

export function createAudioClock(synth) {
  /** recent (performance seconds - context seconds) */
  let deltas = [];
  let fromOutput = null;
  let delta = null;

  /** Takes one more pair; cheap, so callers do it on every scheduling tick. */
  function sample() {
    const ctx = synth.ctx;
    if (!ctx || ctx.state !== 'running') return;
    let d;
    const ts = typeof ctx.getOutputTimestamp === 'function' ? ctx.getOutputTimestamp() : null;
    if (ts && ts.performanceTime > 0 && ts.contextTime > 0) {
      if (fromOutput === false) deltas = [];
      fromOutput = true;
      d = ts.performanceTime / 1000 - ts.contextTime;
    } else {
      if (fromOutput === true) deltas = [];
      fromOutput = false;
      d = performance.now() / 1000 - ctx.currentTime;
    }
    deltas.push(d);
    if (deltas.length > KEEP) deltas.shift();
    if (fromOutput) {
      const sorted = [...deltas].sort((a, b) => a - b);
      delta = sorted[sorted.length >> 1];
    } else {
      delta = Math.min(...deltas) + (ctx.outputLatency || ctx.baseLatency || 0);
    }
  }

  /** Whether times can be mapped (the audio runs and a pair was taken). */
  function ready() {
    if (delta === null) sample();
    return delta !== null && !!synth.ctx && synth.ctx.state === 'running';
  }

  /** The audio-clock time (s) heard at local time `localMs`; null when not ready. */
  function toAudioTime(localMs) {
    if (!ready()) return null;
    return (localMs - performance.timeOrigin) / 1000 - delta;
  }

  /** The local time (ms) at which audio-clock time `audioSec` is heard; null when not ready. */
  function toLocalTime(audioSec) {
    if (!ready()) return null;
    return performance.timeOrigin + (audioSec + delta) * 1000;
  }

  /**
   * The earliest audio time a sound can still be started at (seconds):
   * `currentTime`, the start of the next block to render. It runs ahead of
   * `toAudioTime(now)` by the output latency.
   */
  function earliest() {
    return synth.ctx ? synth.ctx.currentTime : null;
  }

  /** Forgets the pairs (the context was recreated or resumed after a pause). */
  function reset() {
    deltas = [];
    delta = null;
  }

  return { sample, ready, toAudioTime, toLocalTime, earliest, reset };
}
