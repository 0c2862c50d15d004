// synth.ts: a short tone per note with Web Audio, so notes can be heard.
// Browsers start audio only after a gesture; before that (and where there is
// no Web Audio at all, as in tests) notes are silent.

let ctx: AudioContext | null = null;

const WAVE: Record<string, OscillatorType> = { piano: 'triangle', synth: 'sawtooth', bass: 'sawtooth', organ: 'square', drums: 'sine' };

/** Plays MIDI note `note` for a moment, in the instrument's colour. */
export function playNote(note: number, instrument = 'piano'): void {
  if (typeof AudioContext === 'undefined') return;
  ctx ??= new AudioContext();
  if (ctx.state === 'suspended') void ctx.resume();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = WAVE[instrument] ?? 'triangle';
  osc.frequency.value = 440 * 2 ** ((note - 69) / 12);
  const t = ctx.currentTime;
  gain.gain.setValueAtTime(0.2, t);
  gain.gain.exponentialRampToValueAtTime(0.001, t + 0.6);
  osc.connect(gain).connect(ctx.destination);
  osc.start(t);
  osc.stop(t + 0.6);
}
