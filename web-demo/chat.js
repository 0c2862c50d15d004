// chat.js: words between the players.
//
// Owns: the chat box: sending a line as a reliable `event:broadcast` named
// "chat" (`{ text }`; reliable, so it is never lost and a seat that resumes
// gets the lines it missed), showing the lines of the others (with their name
// in their colour) and your own, and saying when a line could not be sent.
// Does not own: the connection (jam-client.js) or the colours (colors.js).

import { $ } from './dom.js';

/** The longest line sent; longer ones are cut. */
export const CHAT_MAX = 500;
/** How many lines the box keeps. */
const KEEP = 200;

export function createChat({ client, colors }) {
  /** the last names seen, so a line from someone who has left still has a name */
  const names = new Map();

  function nameOf(id) {
    const room = client.room;
    const p = room && room.participants.find((q) => q.id === id);
    if (p) names.set(id, p.name);
    return names.get(id) || 'someone';
  }

  function add({ who, hue, text, mine = false, failed = false, replayed = false }) {
    const list = $('chat-log');
    const li = document.createElement('li');
    li.className = 'chat-line';
    li.dataset.testid = 'chat-line';
    if (mine) li.dataset.mine = 'true';
    if (failed) li.dataset.failed = 'true';
    if (replayed) li.dataset.replayed = 'true';
    const name = document.createElement('span');
    name.className = 'chat-name';
    name.textContent = who;
    if (hue !== null) name.style.setProperty('--hue', hue);
    const body = document.createElement('span');
    body.className = 'chat-text';
    body.textContent = text;
    li.append(name, body);
    if (failed) {
      const note = document.createElement('span');
      note.className = 'chat-failed';
      note.textContent = 'not sent: offline';
      li.append(note);
    }
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    list.append(li);
    while (list.children.length > KEEP) list.firstChild.remove();
    if (atBottom || mine) list.scrollTop = list.scrollHeight;
    $('chat-empty').hidden = true;
  }

  function send(e) {
    e.preventDefault();
    const input = $('chat-input');
    const text = [...input.value.trim()].slice(0, CHAT_MAX).join('');
    if (!text) return;
    const path = client.broadcast('chat', { text }, { reliable: true });
    add({ who: 'You', hue: null, text, mine: true, failed: !path });
    if (path) input.value = '';
  }

  client.on('event:broadcast', ({ eventName, payload, senderId }, envelope) => {
    if (eventName !== 'chat' || !payload || typeof payload.text !== 'string') return;
    const text = [...payload.text].slice(0, CHAT_MAX).join('');
    if (!text.trim()) return;
    add({ who: nameOf(senderId), hue: colors.hueOfId(senderId), text, replayed: !!(envelope && envelope.replayed) });
  });
  client.on('room', (room) => {
    if (room) for (const p of room.participants) names.set(p.id, p.name);
  });

  $('chat-form').addEventListener('submit', send);

  /** Empties the box (a new session). */
  function clear() {
    $('chat-log').replaceChildren();
    $('chat-empty').hidden = false;
  }

  return { clear };
}
