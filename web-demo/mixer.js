// mixer.js: how loud each player is here.
//
// Owns: the master volume, each other player's volume and mute (kept by name
// in localStorage, so a player keeps their level across reconnects and
// visits), the gain node each player's notes play into, and the controls for
// them (the master slider, and a mute button and slider that players.js puts
// in each player's row). A muted player's notes are not started at all
// (voices.js asks `muted`). Does not own: the notes (voices.js) or the list
// (players.js).

import { $, loadJson, storeJson } from './dom.js';

const load = (key, fallback) => loadJson(`jam.mix.${key}`, fallback);
const store = (key, value) => storeJson(`jam.mix.${key}`, value);

/** The synth's master bus level at full master volume. */
const MASTER_FULL = 0.5;

export function createMixer({ client, synth }) {
  /** name key -> { volume (0..1), muted } */
  const settings = new Map();
  /** user id -> GainNode */
  const nodes = new Map();
  /** user id -> the controls element handed to players.js */
  const controls = new Map();
  let master = Number(load('master', 0.8));

  const keyOf = (id) => {
    const p = client.room && client.room.participants.find((q) => q.id === id);
    return p ? p.name.toLowerCase() : id;
  };

  function settingOf(id) {
    const key = keyOf(id);
    if (!settings.has(key)) settings.set(key, { volume: 1, muted: false, ...load(`p.${key}`, {}) });
    return settings.get(key);
  }

  function applyMaster() {
    if (synth.out) synth.out.gain.value = MASTER_FULL * master;
  }

  /** The node `id`'s notes play into (created with the audio context). */
  function nodeFor(id) {
    if (!synth.ctx) return undefined;
    applyMaster();
    let node = nodes.get(id);
    if (!node) {
      node = synth.ctx.createGain();
      node.connect(synth.out);
      nodes.set(id, node);
    }
    node.gain.value = settingOf(id).volume;
    return node;
  }

  function muted(id) {
    return settingOf(id).muted;
  }

  function update(id, change) {
    const s = settingOf(id);
    Object.assign(s, change);
    store(`p.${keyOf(id)}`, s);
    const node = nodes.get(id);
    if (node) node.gain.value = s.volume;
    renderControls(id);
  }

  function renderControls(id) {
    const box = controls.get(id);
    if (!box) return;
    const s = settingOf(id);
    const [mute, slider] = box.children;
    mute.setAttribute('aria-pressed', String(s.muted));
    mute.textContent = s.muted ? 'Muted' : 'Mute';
    mute.classList.toggle('on', s.muted);
    slider.value = String(Math.round(s.volume * 100));
    box.dataset.muted = String(s.muted);
  }

  /** The mute button and volume slider for player `id` (made once, kept). */
  function controlsFor(id, name) {
    let box = controls.get(id);
    if (!box) {
      box = document.createElement('span');
      box.className = 'mix';
      const mute = document.createElement('button');
      mute.type = 'button';
      mute.className = 'small mute';
      mute.dataset.testid = 'mute-button';
      mute.setAttribute('aria-label', `Mute ${name}`);
      mute.addEventListener('click', () => update(id, { muted: !settingOf(id).muted }));
      const slider = document.createElement('input');
      slider.type = 'range';
      slider.min = '0';
      slider.max = '100';
      slider.className = 'volume';
      slider.dataset.testid = 'volume-slider';
      slider.setAttribute('aria-label', `Volume of ${name}`);
      slider.addEventListener('input', () => update(id, { volume: Number(slider.value) / 100 }));
      box.append(mute, slider);
      controls.set(id, box);
    }
    renderControls(id);
    return box;
  }

  /** Forgets the controls and node of a player who left. */
  function forget(id) {
    controls.delete(id);
    const node = nodes.get(id);
    if (node) node.disconnect();
    nodes.delete(id);
  }

  const masterSlider = $('master-volume');
  masterSlider.value = String(Math.round(master * 100));
  masterSlider.addEventListener('input', () => {
    master = Number(masterSlider.value) / 100;
    store('master', master);
    applyMaster();
  });

  return { nodeFor, muted, controlsFor, forget, applyMaster, setMuted: (id, m) => update(id, { muted: m }) };
}
