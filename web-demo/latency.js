// latency.js: how far each player is from you, in words and lights.
//
// Owns: the one-way delay from each player to you ((their round trip + yours)
// / 2, docs/protocol.md §8) and its grade (good up to 25 ms, playable up to
// 50 ms, hard above), and the status bar's readout of your own round trip and
// clock error. Does not own: the measurements (the server's, kept current by
// jam-client.js) or the player list (players.js draws the lights this gives).

import { gradeLatency } from './jam-client.js';
import { $ } from './dom.js';

const GRADE_TEXT = { good: 'good', playable: 'playable', hard: 'hard', null: 'measuring…' };

/** `{ oneWayMs, rttMs, grade, text }` for participant `p` as heard by this client. */
export function latencyOf(client, p) {
  const room = client.room;
  const you = room && p.id === room.userId;
  const rttMs = p.rttMs ?? null;
  if (you) {
    const mine = rttMs ?? client.clock.rttMs;
    return { oneWayMs: null, rttMs: mine, grade: null, text: mine === null ? 'measuring…' : `${Math.round(mine)} ms round trip` };
  }
  const oneWayMs = client.delayMs(p.id);
  const grade = gradeLatency(oneWayMs);
  const text = oneWayMs === null ? 'measuring…' : `${Math.round(oneWayMs)} ms to you · ${GRADE_TEXT[grade]}`;
  return { oneWayMs, rttMs, grade, text };
}

/** Keeps the status bar's "you: N ms · clock ±E ms" current. */
export function createLatencyReadout({ client }) {
  function render() {
    const el = $('my-latency');
    const room = client.room;
    const me = room && room.participants.find((p) => p.id === room.userId);
    const rtt = me && me.rttMs !== null && me.rttMs !== undefined ? me.rttMs : client.clock.rttMs;
    const err = client.clock.errorMs;
    if (client.state !== 'connected' || rtt === null || rtt === undefined) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    el.dataset.rtt = String(Math.round(rtt));
    el.dataset.clockError = err === null ? '' : err.toFixed(2);
    el.textContent = `${Math.round(rtt)} ms round trip${err === null ? '' : ` · clock ±${err < 1 ? err.toFixed(1) : Math.round(err)} ms`}`;
    el.title = 'Your round trip to the server, and how far off the room clock may be here';
  }
  client.on('clock', render);
  client.on('latency', render);
  client.on('state', render);
  client.on('room', render);
  return { render };
}
