// tempo.js: the room's tempo, shown and set.
//
// Owns: the tempo panel: BPM and beats per bar in effect, who set them (by
// name, even after they left; roster.js remembers names), a change that is on
// its way (it takes effect on a bar line; its line is there, empty, when no
// change is coming, so one arriving moves nothing), the form anyone in the
// room uses to change them, and the beat lights that follow the room's beat.
// Does not own: the tempo itself (jam-client.js) or the metronome
// (metronome.js).

import { describeError } from './errors.js';
import { $ } from './dom.js';

export function createTempoPanel({ client, state, status, roster }) {
  let raf = null;
  let lastBeat = null;

  /** Who `id` is, in the words of "set by …". */
  function nameOf(id) {
    if (!id) return null;
    const room = client.room;
    if (room && id === room.userId) return 'you';
    const name = roster.nameOf(id);
    if (!name) return 'someone who has left';
    // Still here, or here again under the same name (a fresh seat after a long drop-out).
    const here = room && room.participants.some((q) => q.id === id || q.name === name);
    return here ? name : `${name}, who has left`;
  }

  function render() {
    const tempo = client.tempo;
    if (!tempo) return;
    const pending = client.pendingTempo;
    $('tempo-bpm').textContent = String(Math.round(tempo.bpm * 10) / 10);
    $('tempo-meter').textContent = `${tempo.beatsPerBar}/4`;
    const by = nameOf(tempo.setBy);
    $('tempo-setby').textContent = by ? `set by ${by}` : 'room default';
    $('tempo-panel').dataset.bpm = String(tempo.bpm);
    $('tempo-panel').dataset.beatsPerBar = String(tempo.beatsPerBar);
    const pend = $('tempo-pending');
    pend.dataset.pending = String(!!pending);
    pend.textContent = pending ? `→ ${Math.round(pending.bpm * 10) / 10} BPM, ${pending.beatsPerBar}/4 from the next bar (${nameOf(pending.setBy) || 'someone'})` : '';
    const dots = $('beat-dots');
    dots.classList.toggle('many', tempo.beatsPerBar > 8);
    if (dots.children.length !== tempo.beatsPerBar) {
      dots.replaceChildren(
        ...Array.from({ length: tempo.beatsPerBar }, (_, i) => {
          const d = document.createElement('span');
          d.className = i === 0 ? 'dot down' : 'dot';
          return d;
        }),
      );
    }
    // The form shows the tempo in effect unless someone is typing in it.
    const form = $('tempo-form');
    if (!form.contains(document.activeElement)) {
      $('bpm-input').value = String(Math.round(tempo.bpm * 10) / 10);
      $('bpb-input').value = String(tempo.beatsPerBar);
    }
  }

  function animate() {
    raf = null;
    if (state.view !== 'session' || !client.room) return;
    const at = client.barAt();
    if (at) {
      const beat = Math.floor(at.beatInBar + 1e-6);
      if (beat !== lastBeat) {
        lastBeat = beat;
        const dots = $('beat-dots').children;
        for (let i = 0; i < dots.length; i++) dots[i].classList.toggle('lit', i === beat);
      }
    }
    raf = requestAnimationFrame(animate);
  }

  function start() {
    render();
    if (raf === null) raf = requestAnimationFrame(animate);
  }

  $('tempo-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const bpm = Number($('bpm-input').value);
    const beatsPerBar = Number($('bpb-input').value);
    if (!Number.isFinite(bpm) || bpm < 20 || bpm > 300) {
      status.showError('The tempo can be 20 to 300 BPM.');
      return;
    }
    const button = $('tempo-set');
    button.disabled = true;
    try {
      await client.setTempo(bpm, beatsPerBar);
      $('bpm-input').blur();
      render();
    } catch (err) {
      status.showError(`Could not change the tempo: ${describeError(err)}`);
    } finally {
      button.disabled = false;
    }
  });

  const bpb = $('bpb-input');
  for (let i = 1; i <= 16; i++) {
    const o = document.createElement('option');
    o.value = String(i);
    o.textContent = `${i}/4`;
    bpb.append(o);
  }

  client.on('tempo', () => render());
  client.on('room', () => render());

  return { start, render };
}
