// latency.js: how far each player is from you, in words and lights.
//
// Owns: the one-way delay from each player to you ((their round trip + yours)
// / 2, docs/protocol.md §8) and its grade (good up to 25 ms, playable up to
// 50 ms, hard above); your own link's light, graded by your round trip (what
// someone with a link like yours hears you late by); and the status bar's
// readout of your round trip and of how closely this page keeps to the
// room's beat. Does not own: the measurements (the server's, kept current by
// jam-client.js) or the player list (players.js draws the lights this gives).

import { gradeLatency } from './jam-client.js';
import { $ } from './dom.js';

const GRADE_TEXT = { good: 'good', playable: 'playable', hard: 'hard', null: 'measuring…' };

/**
 * `{ oneWayMs, rttMs, grade, short, title }` for participant `p` as heard by
 * this client: `short` is what the row shows ("12 ms"), `title` says it in words.
 */
export function latencyOf(client, p) {
  const room = client.room;
  const you = room && p.id === room.userId;
  const rttMs = p.rttMs ?? null;
  if (you) {
    const mine = rttMs ?? client.clock.rttMs;
    const grade = mine === null ? null : gradeLatency(mine);
    return {
      oneWayMs: null,
      rttMs: mine,
      grade,
      short: mine === null ? '…' : `${Math.round(mine)} ms`,
      title: mine === null ? 'Your link: measuring…' : `Your link: ${Math.round(mine)} ms to the server and back (${GRADE_TEXT[grade]})`,
    };
  }
  const oneWayMs = client.delayMs(p.id);
  const grade = gradeLatency(oneWayMs);
  return {
    oneWayMs,
    rttMs,
    grade,
    short: oneWayMs === null ? '…' : `${Math.round(oneWayMs)} ms`,
    title: oneWayMs === null ? `Sound from ${p.name}: measuring…` : `Sound from ${p.name} takes about ${Math.round(oneWayMs)} ms to reach you (${GRADE_TEXT[grade]})`,
  };
}

/** Keeps the status bar's "N ms round trip · in time within E ms" current. */
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
    const within = err === null ? '' : ` · in time within ${err < 1 ? err.toFixed(1) : Math.round(err)} ms`;
    el.textContent = `${Math.round(rtt)} ms round trip${within}`;
    el.title =
      'How long a message takes to the server and back, and how closely this page keeps to the room\'s beat ' +
      '(the metronome and the others\' notes are placed by it)';
  }
  client.on('clock', render);
  client.on('latency', render);
  client.on('state', render);
  client.on('room', render);
  return { render };
}
