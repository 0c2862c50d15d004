// players.js: the list of players in the session.
//
// Owns: drawing the participant list in the room's order (roster.js): name,
// instrument, host and you tags, a colour each from colors.js, a latency
// light from latency.js on every row (your own graded by your round trip),
// and the mixer's mute button and volume slider for each other player; an
// away player greyed with why ("no signal" when their connection is open but
// silent, "reconnecting…" when it ended); the whole list greyed while our
// own link is down; how many notes each participant has played, flashing a
// participant as they play, and the last list seen. Rows are updated in
// place, so a slider being dragged survives a latency update. Does not own:
// who is in the room and their status (jam-client.js keeps `client.room`),
// the order and the away reasons (roster.js), the measurements
// (jam-client.js), the levels (mixer.js) or announcing arrivals and
// departures (views.js).

import { $, instrumentBadge, restartAnimation } from './dom.js';
import { latencyOf } from './latency.js';

/** What an away row says, by why the seat is away. */
export const AWAY_TEXT = { silent: 'no signal', disconnected: 'reconnecting…', unknown: 'away' };

export function createPlayerList({ client, colors, mixer, roster }) {
  /** participant id -> notes heard from them */
  const perParticipant = new Map();
  /** participant id -> row */
  const rows = new Map();
  /** the list shown when there is no room to read (kept while reconnecting) */
  let lastParticipants = [];

  function tag(text, kind) {
    const span = document.createElement('span');
    span.className = `tag tag-${kind}`;
    span.textContent = text;
    return span;
  }

  function rowFor(p) {
    let li = rows.get(p.id);
    if (li) return li;
    li = document.createElement('li');
    li.className = 'participant';
    li.dataset.testid = 'participant';
    li.dataset.userId = p.id;
    li.innerHTML =
      '<span class="avatar" aria-hidden="true"></span>' +
      '<span class="who"><span class="name"></span></span>' +
      '<span class="meta"><span class="inst muted"></span><span class="tags"></span></span>' +
      '<span class="lat" data-testid="latency"><span class="light" aria-hidden="true"></span><span class="lat-text"></span></span>' +
      '<span class="away-tag" data-testid="away-tag"><span class="light" aria-hidden="true"></span><span class="away-text"></span></span>';
    rows.set(p.id, li);
    return li;
  }

  function render() {
    const room = client.room;
    const list = $('participants');
    const online = client.state === 'connected';
    // While our own link is down, nobody's status is current.
    const stale = !room || !online;
    const people = roster.sorted(room ? room.participants : lastParticipants);
    if (room) lastParticipants = room.participants;
    list.classList.toggle('stale', stale);
    $('people-count').textContent = String(people.length);
    for (const id of [...rows.keys()]) {
      if (!people.some((p) => p.id === id)) {
        rows.delete(id);
        mixer.forget(id);
      }
    }
    const items = people.map((p) => {
      const li = rowFor(p);
      const hue = colors.hueOf(p);
      li.dataset.name = p.name;
      li.dataset.notes = String(perParticipant.get(p.id) || 0);
      li.style.setProperty('--hue', hue);
      li.dataset.hue = String(hue);
      const isYou = !!room && p.id === room.userId;
      const isHost = !!room && p.id === room.hostId;
      const reason = isYou ? null : roster.awayReason(p);
      li.dataset.status = reason ? 'away' : 'active';
      li.classList.toggle('away', !!reason);
      if (reason) li.dataset.awayReason = reason;
      else delete li.dataset.awayReason;
      if (isYou) li.dataset.you = 'true';
      else delete li.dataset.you;
      if (isHost) li.dataset.host = 'true';
      else delete li.dataset.host;
      li.querySelector('.avatar').textContent = [...p.name][0] ? [...p.name][0].toUpperCase() : '?';
      li.querySelector('.name').textContent = p.name;
      li.querySelector('.name').title = p.name;
      const badge = instrumentBadge(p.instrument);
      li.querySelector('.inst').replaceChildren(badge);
      li.querySelector('.inst').title = badge.textContent;
      li.querySelector('.away-text').textContent = reason ? AWAY_TEXT[reason] : '';
      li.querySelector('.away-tag').title =
        reason === 'silent'
          ? `Nothing has come from ${p.name} for a few seconds: their connection is open but silent`
          : reason === 'disconnected'
            ? `${p.name}'s connection ended; the server holds their seat while they reconnect`
            : `${p.name} is away; the server holds their seat`;
      // Latency: one-way to you and its grade; your own round trip, graded, on your row.
      const lat = latencyOf(client, p);
      const latEl = li.querySelector('.lat');
      latEl.dataset.grade = isYou && !online ? 'offline' : lat.grade || 'unknown';
      latEl.dataset.oneWay = lat.oneWayMs === null ? '' : String(Math.round(lat.oneWayMs));
      latEl.dataset.rtt = lat.rttMs === null ? '' : String(Math.round(lat.rttMs));
      latEl.title = lat.title;
      latEl.querySelector('.lat-text').textContent = isYou && !online ? 'offline' : lat.short;
      const tags = li.querySelector('.tags');
      tags.replaceChildren(...[isHost && tag('Host', 'host'), isYou && tag('You', 'you')].filter(Boolean));
      // The mixer's controls for everyone but you.
      const mix = li.querySelector('.mix');
      if (!isYou) {
        const controls = mixer.controlsFor(p.id, p.name);
        if (mix !== controls) {
          if (mix) mix.remove();
          li.append(controls);
        }
      } else if (mix) {
        mix.remove();
      }
      return li;
    });
    // Keep rows (and a slider being dragged) in place; only reorder when needed.
    const current = [...list.children];
    if (current.length !== items.length || current.some((el, i) => el !== items[i])) list.replaceChildren(...items);
  }

  /** Counts a note from `id` and lights their entry. */
  function flash(id) {
    perParticipant.set(id, (perParticipant.get(id) || 0) + 1);
    const li = rows.get(id);
    if (!li) return;
    li.dataset.notes = String(perParticipant.get(id));
    restartAnimation(li, 'playing');
  }

  /** A participant from the last list seen: a leaver is gone from `client.room` already. */
  function lastSeen(id) {
    return lastParticipants.find((p) => p.id === id);
  }

  client.on('room', () => render());
  client.on('state', () => render());
  roster.onChange(() => render());
  client.on('clock', () => {
    // Your own round trip shows the clock's until the server has measured it.
    const room = client.room;
    const me = room && room.participants.find((p) => p.id === room.userId);
    if (me && me.rttMs === null) render();
  });

  return { render, flash, lastSeen };
}
