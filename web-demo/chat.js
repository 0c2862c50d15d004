// chat.js: words between the players.
//
// Owns: the chat box: sending a line as a reliable `event:broadcast` named
// "chat" (`{ text }`; reliable, so it is never lost and a seat that resumes
// gets the lines it missed), showing the lines of the others (with their name
// in their colour) and your own, saying when a line could not be sent, the
// count of lines from the others not seen yet (the chat collapsed, out of
// view, or the tab hidden; shown on the chat's title and on the stage's Chat
// button), giving the keys back to the instrument after a line is sent or on
// Escape, collapsing and opening the box, and keeping the lines of this room
// in sessionStorage so a reload shows them again. Does not own: the
// connection (jam-client.js), the colours (colors.js) or the keys
// (play-area.js, whose `focus` this calls).

import { $, loadSession, storeSession } from './dom.js';

/** The longest line sent; longer ones are cut. */
export const CHAT_MAX = 500;
/** How many lines the box keeps (and a reload shows). */
const KEEP = 200;
/** Where a reload finds the lines: `{ roomCode, lines: [{ who, id, hue, text, mine, failed, seq }] }`. */
const STORE_KEY = 'jam.chat';
/** How much of the box must be on screen for its lines to count as seen. */
const SEEN_RATIO = 0.5;

export function createChat({ client, colors, roster, focusPlay }) {
  /** the room whose lines the box shows */
  let roomCode = null;
  /** the lines shown, as kept */
  let lines = [];
  /** lines from the others not seen yet */
  let unread = 0;
  /** whether enough of the box is on screen */
  let inView = false;
  let collapsed = false;

  function nameOf(id) {
    return roster.nameOf(id) || 'someone';
  }

  function save() {
    if (roomCode) storeSession(STORE_KEY, { roomCode, lines });
  }

  function draw({ who, hue, text, mine = false, failed = false, replayed = false }) {
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
    if (hue !== null && hue !== undefined) name.style.setProperty('--hue', hue);
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

  function add(line, { replayed = false } = {}) {
    lines.push(line);
    if (lines.length > KEEP) lines.splice(0, lines.length - KEEP);
    draw({ ...line, replayed });
    save();
  }

  // --- unread ---------------------------------------------------------------

  function seen() {
    return !collapsed && inView && document.visibilityState === 'visible';
  }

  function renderUnread() {
    for (const id of ['chat-unread', 'chat-unread-title']) {
      const el = $(id);
      el.hidden = unread === 0;
      el.textContent = String(unread);
    }
    const label = unread ? `Chat, ${unread} new line${unread === 1 ? '' : 's'}` : 'Chat';
    $('chat-jump').setAttribute('aria-label', label);
    $('chat-jump').dataset.unread = String(unread);
  }

  function markSeen() {
    if (!seen() || unread === 0) return;
    unread = 0;
    renderUnread();
  }

  new IntersectionObserver(
    ([entry]) => {
      inView = entry.isIntersecting && entry.intersectionRatio >= SEEN_RATIO;
      markSeen();
    },
    { threshold: [0, SEEN_RATIO, 1] },
  ).observe($('chat'));
  document.addEventListener('visibilitychange', markSeen);

  function setCollapsed(next) {
    collapsed = next;
    $('chat').dataset.collapsed = String(collapsed);
    $('chat-toggle').setAttribute('aria-expanded', String(!collapsed));
    markSeen();
  }

  $('chat-toggle').addEventListener('click', () => setCollapsed(!collapsed));

  // The stage's Chat button: open the box, bring it into view and type.
  $('chat-jump').addEventListener('click', () => {
    setCollapsed(false);
    $('chat').scrollIntoView({ block: 'nearest' });
    $('chat-input').focus();
  });

  // --- sending ----------------------------------------------------------------

  /** Hands the computer keyboard back to the instrument. */
  function leaveBox() {
    $('chat-input').blur();
    focusPlay();
  }

  function send(e) {
    e.preventDefault();
    const input = $('chat-input');
    const text = [...input.value.trim()].slice(0, CHAT_MAX).join('');
    if (!text) return;
    const path = client.broadcast('chat', { text }, { reliable: true });
    add({ who: 'You', id: null, hue: null, text, mine: true, failed: !path, seq: null });
    if (!path) return; // kept in the box, to send again
    input.value = '';
    leaveBox();
  }

  $('chat-form').addEventListener('submit', send);
  $('chat-input').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      leaveBox();
    }
  });
  $('chat-input').addEventListener('focus', () => {
    if (unread) {
      unread = 0;
      renderUnread();
    }
  });

  client.on('event:broadcast', ({ eventName, payload, senderId }, envelope) => {
    if (eventName !== 'chat' || !payload || typeof payload.text !== 'string') return;
    const text = [...payload.text].slice(0, CHAT_MAX).join('');
    if (!text.trim()) return;
    const seq = envelope && Number.isInteger(envelope.seq) ? envelope.seq : null;
    // Kept from before a reload, and sent again by the resume's replay.
    if (seq !== null && lines.some((l) => l.seq === seq)) return;
    add({ who: nameOf(senderId), id: senderId, hue: colors.hueOfId(senderId), text, mine: false, failed: false, seq }, { replayed: !!(envelope && envelope.replayed) });
    if (!seen()) {
      unread++;
      renderUnread();
    }
  });

  /**
   * Shows the lines of room `code`: the ones kept from before a reload if they
   * are this room's, else an empty box (a new session).
   */
  function open(code) {
    if (code === roomCode) return;
    roomCode = code;
    const kept = loadSession(STORE_KEY, null);
    lines = kept && kept.roomCode === code && Array.isArray(kept.lines) ? kept.lines.slice(-KEEP) : [];
    $('chat-log').replaceChildren();
    $('chat-empty').hidden = lines.length > 0;
    for (const line of lines) {
      // Colours follow the room's order now, not when the line was said.
      const hue = line.id && roster.place(line.id) >= 0 ? colors.hueOfId(line.id) : line.hue;
      draw({ ...line, hue });
    }
    unread = 0;
    renderUnread();
    save();
  }

  /** Forgets the room's lines (the player left it). */
  function close() {
    roomCode = null;
    lines = [];
    storeSession(STORE_KEY, null);
  }

  renderUnread();

  return { open, close };
}
