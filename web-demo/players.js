// players.js: the list of players in the session.
//
// Owns: drawing the participant list (name, instrument, host and you tags, a
// colour each, derived from the user id so it survives reconnects), a player
// whose connection dropped greyed with "reconnecting…" (the server holds the
// seat), the whole list greyed while our own link is down, how many notes each
// participant has played, flashing a participant as they play, and the last
// list seen. Does not own: who is in the room and their status (jam-client.js
// keeps `client.room`) or announcing arrivals and departures (views.js).

import { $, hueFor, instrumentBadge, restartAnimation } from './dom.js';

export function createPlayerList({ client }) {
  /** participant id -> notes heard from them */
  const perParticipant = new Map();
  /** the list shown when there is no room to read (kept while reconnecting) */
  let lastParticipants = [];

  function render() {
    const room = client.room;
    const list = $('participants');
    const online = client.state === 'connected';
    // While our own link is down, nobody's status is current.
    const stale = !room || !online;
    const people = room ? room.participants : lastParticipants;
    if (room) lastParticipants = room.participants;
    list.classList.toggle('stale', stale);
    $('people-count').textContent = String(people.length);
    list.replaceChildren(
      ...people.map((p) => {
        const li = document.createElement('li');
        li.className = 'participant';
        li.dataset.testid = 'participant';
        li.dataset.userId = p.id;
        li.dataset.name = p.name;
        li.dataset.notes = String(perParticipant.get(p.id) || 0);
        li.style.setProperty('--hue', hueFor(p.id));
        li.dataset.hue = String(hueFor(p.id));
        const isYou = room && p.id === room.userId;
        const isHost = room && p.id === room.hostId;
        const away = p.status === 'away' && !isYou;
        li.dataset.status = away ? 'away' : 'active';
        li.classList.toggle('away', away);
        if (isYou) li.dataset.you = 'true';
        if (isHost) li.dataset.host = 'true';
        const avatar = document.createElement('span');
        avatar.className = 'avatar';
        avatar.setAttribute('aria-hidden', 'true');
        avatar.textContent = [...p.name][0] ? [...p.name][0].toUpperCase() : '?';
        const who = document.createElement('span');
        who.className = 'who';
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = p.name;
        const inst = document.createElement('span');
        inst.className = 'inst muted';
        inst.append(instrumentBadge(p.instrument));
        who.append(name, inst);
        const tags = document.createElement('span');
        tags.className = 'tags';
        if (away) tags.append(tag('reconnecting…', 'away'));
        if (isYou && !online) tags.append(tag('offline', 'away'));
        if (isHost) tags.append(tag('Host', 'host'));
        if (isYou) tags.append(tag('You', 'you'));
        li.append(avatar, who, tags);
        return li;
      }),
    );
  }

  function tag(text, kind) {
    const span = document.createElement('span');
    span.className = `tag tag-${kind}`;
    span.textContent = text;
    return span;
  }

  /** Counts a note from `id` and lights their entry. */
  function flash(id) {
    perParticipant.set(id, (perParticipant.get(id) || 0) + 1);
    const li = [...$('participants').children].find((el) => el.dataset.userId === id);
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

  return { render, flash, lastSeen };
}
