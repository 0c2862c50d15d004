// views.js: the page's three views and moving between them.
//
// Owns: the lobby (display name, instrument picker, create and join, an
// invitation from a `?room=` link), the session view (room code, share link,
// copy buttons, leaving after a confirmation), the session-ended view, the
// `?room=` in the address, remembering name and instrument, taking back the
// seat after a reload, and what the page does and says as the link goes down
// (the offline state, and its banner, whose words follow what the server
// does: the seat is held for the resume window, then given up), as the seat
// is regained or lost for good, or as people drop out (no signal, or
// disconnected), come back, come and go (a seat brought back after a server
// restart is back, not new). On entering a session the page scrolls back to
// the top, so the status bar and the players are in view. Does not own: the
// status bar's wording (status.js), the player list's drawing (players.js),
// the room's order (roster.js), the keys (play-area.js), the tempo panel
// (tempo.js), the legend (remote-view.js), the chat (chat.js), input
// (input.js) or sound (voices.js).

import { describeError } from './errors.js';
import { INSTRUMENTS } from './audio.js';
import { $, instrumentIcon, instrumentBadge, loadText, storeText } from './dom.js';

/** What the page says while the room moves to another server. */
const MOVING_TEXT = 'Moving to another server…';

/**
 * How long the server holds a seat once it has lost the connection: its
 * resume window (docs/protocol.md §6; `--resume-window`, 30 s unless the
 * server is started with another).
 */
const RESUME_WINDOW_S = 30;
/**
 * How long the server may take to find a link that went dark without closing
 * gone: its peer timeout (`--peer-timeout`, 15 s by default; §3, §4). Its
 * window starts then, so a seat is held between RESUME_WINDOW_S and
 * RESUME_WINDOW_S + PEER_TIMEOUT_S after the page finds the link down.
 */
const PEER_TIMEOUT_S = 15;

/** Errors of a request that mean the server could not be reached (they go once connected). */
const LINK_CODES = new Set(['connect_failed', 'not_connected', 'disconnected', 'timeout']);

/** Where the keyboard starts for an instrument, when not middle C (C4 = 60). */
const DEFAULT_BASE = { bass: 36 };

const store = (key, value) => storeText(`jam.${key}`, value);
const load = (key) => loadText(`jam.${key}`);

async function copyText(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // Clipboard API refused (permissions, insecure origin): select and copy.
    const input = document.createElement('textarea');
    input.value = text;
    document.body.append(input);
    input.select();
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    input.remove();
  }
  const old = button.dataset.label || button.textContent;
  button.dataset.label = old;
  button.textContent = ok ? 'Copied!' : 'Copy failed';
  setTimeout(() => {
    button.textContent = old;
  }, 1500);
}

function shareLink(roomCode) {
  return `${location.origin}${location.pathname}?room=${encodeURIComponent(roomCode)}`;
}

/**
 * Writes `state.view`, `state.instrument` and `state.base` (a new room starts
 * at the instrument's default octave). `input.releaseAll` and
 * `voices.releaseAllRemote` silence the page when a session ends.
 */
export function createViews({ client, state, status, playArea, players, voices, input, tempoPanel, remoteView, chat, roster }) {
  /** the room the page shows (kept while rejoining) */
  let roomCode = null;
  /** whether the banner says we are offline (so coming back clears it, and nothing else) */
  let showingOffline = false;
  // The room is moving to another server (`moving` until `reconnected`).
  let moving = false;
  /** when the page last saw the link go down in a session (performance.now()), or null */
  let offlineSince = null;
  let offlineTimer = null;

  function showView(view) {
    if (state.view !== view) status.clearAnnouncement();
    state.view = view;
    $('lobby').hidden = view !== 'lobby';
    $('session').hidden = view !== 'session';
    $('ended').hidden = view !== 'ended';
    document.body.dataset.view = view;
  }

  function setBusy(busy) {
    for (const id of ['create', 'join', 'new-session']) $(id).disabled = busy;
  }

  // --- lobby ------------------------------------------------------------------

  function renderInstrumentPicker() {
    const box = $('instrument-options');
    box.replaceChildren();
    for (const inst of INSTRUMENTS) {
      const label = document.createElement('label');
      label.className = 'instrument-option';
      const radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'instrument';
      radio.value = inst.id;
      radio.dataset.testid = `instrument-${inst.id}`;
      radio.checked = inst.id === state.instrument;
      radio.addEventListener('change', () => {
        state.instrument = inst.id;
        store('instrument', inst.id);
      });
      const icon = instrumentIcon(inst.id);
      icon.classList.add('instrument-icon');
      const text = document.createElement('span');
      text.textContent = inst.label;
      label.append(radio, icon, text);
      box.append(label);
    }
  }

  function readName() {
    const name = $('name').value.trim();
    if (!name) {
      status.showError('Please enter a display name first.');
      $('name').focus();
      return null;
    }
    if ([...name].length > 32) {
      status.showError('Names can have at most 32 characters.');
      $('name').focus();
      return null;
    }
    store('name', name);
    return name;
  }

  async function ensureConnected() {
    if (client.state === 'connected') return true;
    if (client.state === 'reconnecting') {
      status.showError('Still reconnecting to the server; try again in a moment.', { link: true });
      return false;
    }
    const ok = await status.connect();
    if (!ok) status.showError('Cannot reach the server. Check that it is running, then press Retry now.', { link: true });
    return ok;
  }

  async function createSession() {
    status.clearError();
    const name = readName();
    if (!name) return;
    setBusy(true);
    try {
      if (!(await ensureConnected())) return;
      const room = await client.create({ name, instrument: state.instrument });
      enterSession(room);
    } catch (err) {
      status.showError(`Could not create the session: ${describeError(err)}`, { link: LINK_CODES.has(err.code) });
    } finally {
      setBusy(false);
    }
  }

  async function joinSession(event) {
    if (event) event.preventDefault();
    status.clearError();
    const name = readName();
    if (!name) return;
    const code = $('room-code').value.trim();
    if (!code) {
      status.showError('Please enter the room code you were given.');
      $('room-code').focus();
      return;
    }
    setBusy(true);
    try {
      if (!(await ensureConnected())) return;
      const room = await client.join({ roomCode: code, name, instrument: state.instrument });
      enterSession(room);
    } catch (err) {
      status.showError(`Could not join ${code.toUpperCase()}: ${describeError(err)}`, { link: LINK_CODES.has(err.code) });
    } finally {
      setBusy(false);
    }
  }

  /**
   * After a reload: takes back the seat this tab held (the client kept it in
   * sessionStorage). The outcome arrives as `reconnected` or `session-ended`.
   * Returns whether there was a seat.
   */
  function restoreSeat() {
    const seat = client.savedSeat;
    if (!seat || !client.restore()) return false;
    $('invite').textContent = `Taking your seat in session ${seat.roomCode} back…`;
    $('invite').hidden = false;
    return true;
  }

  /** Shows the lobby as the page opens: saved name and instrument, and an invitation when the address has `?room=`. */
  function openLobby({ name, invited }) {
    const savedInstrument = load('instrument');
    if (INSTRUMENTS.some((i) => i.id === savedInstrument)) state.instrument = savedInstrument;
    renderInstrumentPicker();
    $('name').value = name || load('name') || '';
    if (invited) {
      $('room-code').value = invited.toUpperCase();
      $('invite').textContent = `You are invited to session ${invited.toUpperCase()}. Enter your name, pick an instrument and press Join session.`;
      $('invite').hidden = false;
      document.body.dataset.invited = 'true';
      ($('name').value ? $('join') : $('name')).focus();
    } else {
      $('name').focus();
    }
    showView('lobby');
  }

  // --- session ----------------------------------------------------------------

  /**
   * In a session with the link down: the page says that played notes reach
   * nobody, and what happens to the seat. The server holds it for its resume
   * window from when it loses the connection, which is at once for a link
   * that closed and up to its peer timeout later for one that went dark; once
   * the seat is gone, the page (still reconnecting) joins the room again as a
   * new player.
   */
  function renderOffline() {
    const offline = status.offline();
    $('session').dataset.offline = String(offline);
    document.body.dataset.offline = String(offline);
    clearTimeout(offlineTimer);
    if (offline && offlineSince === null) offlineSince = performance.now();
    else if (!offline) offlineSince = null;
    const away = offline ? (performance.now() - offlineSince) / 1000 : 0;
    const seat = !offline || away < RESUME_WINDOW_S ? 'held' : away < RESUME_WINDOW_S + PEER_TIMEOUT_S ? 'maybe-gone' : 'gone';
    // Say it again when the seat's fate changes.
    if (offline && seat !== 'gone') {
      const next = seat === 'held' ? RESUME_WINDOW_S : RESUME_WINDOW_S + PEER_TIMEOUT_S;
      offlineTimer = setTimeout(renderOffline, (next - away) * 1000 + 50);
    }
    $('session').dataset.seat = seat;
    const rejoin = 'When the link is back, this page joins the room again as a new player.';
    if (offline && moving) status.setBanner(MOVING_TEXT);
    else if (offline && seat === 'gone') {
      status.setBanner(`Offline for more than ${RESUME_WINDOW_S + PEER_TIMEOUT_S} s — the server has given your seat up. Still reconnecting. ${rejoin}`);
    } else if (offline && seat === 'maybe-gone') {
      status.setBanner(
        `Offline for more than ${RESUME_WINDOW_S} s — the server holds a seat for ${RESUME_WINDOW_S} s after it loses the connection, so yours may be gone. ` +
          `Still reconnecting: the page takes the seat back if it can. ${rejoin.replace('When', 'If not, when')}`,
      );
    } else if (offline) {
      status.setBanner(
        `Offline — your notes are not reaching the room. Reconnecting; the others see you greyed out, and the server keeps your seat for at least ${RESUME_WINDOW_S} s.`,
      );
    } else if (showingOffline || state.view === 'session') status.setBanner('');
    showingOffline = offline;
  }

  function enterSession(room) {
    const me = room.participants.find((p) => p.id === room.userId);
    if (me && INSTRUMENTS.some((i) => i.id === me.instrument)) state.instrument = me.instrument;
    $('room-code-display').textContent = room.roomCode;
    $('share-link').value = shareLink(room.roomCode);
    $('my-instrument').replaceChildren('You play ', instrumentBadge(state.instrument));
    // A reload of this address offers to join the same room again.
    const url = new URL(location.href);
    url.searchParams.set('room', room.roomCode);
    history.replaceState(null, '', url);
    // A rejoin after a reconnect keeps the octave the player had; the chat
    // keeps the room's lines (a reload finds them in sessionStorage).
    const fresh = roomCode !== room.roomCode;
    if (fresh) state.base = DEFAULT_BASE[state.instrument] ?? 60;
    chat.open(room.roomCode);
    roomCode = room.roomCode;
    $('invite').hidden = true;
    status.setBanner('');
    showView('session');
    renderOffline();
    status.render();
    playArea.render();
    players.render();
    remoteView.renderLegend();
    tempoPanel.start();
    // The lobby may have been scrolled (a phone's keyboard, a long invite):
    // the session starts at the top, status bar and players in view.
    if (fresh) {
      window.scrollTo(0, 0);
      $('deck').scrollTop = 0;
      closeLeave();
    }
    if (!document.activeElement || document.activeElement === document.body || $('lobby').contains(document.activeElement) || $('ended').contains(document.activeElement)) {
      playArea.focus();
    }
  }

  /** Shows the lobby and drops `?room=` from the address. */
  function backToLobby() {
    roomCode = null;
    const url = new URL(location.href);
    url.searchParams.delete('room');
    history.replaceState(null, '', url);
    $('room-code').value = '';
    $('invite').hidden = true;
    delete document.body.dataset.invited;
    showView('lobby');
    $('create').focus();
  }

  async function leaveSession() {
    closeLeave();
    input.releaseAll();
    voices.releaseAllRemote();
    chat.close();
    try {
      await client.leave();
    } catch {
      // Leaving is best effort: the server frees the seat at the end of its resume window anyway.
    }
    backToLobby();
  }

  // Leaving takes a second tap: the button is far from the share link, and asks first.
  function askLeave() {
    $('leave-confirm').hidden = false;
    $('leave').hidden = true;
    $('leave-no').focus();
  }

  function closeLeave() {
    const wasOpen = !$('leave-confirm').hidden;
    $('leave-confirm').hidden = true;
    $('leave').hidden = false;
    return wasOpen;
  }

  $('create').addEventListener('click', createSession);
  $('join-form').addEventListener('submit', joinSession);
  $('leave').addEventListener('click', askLeave);
  $('leave-yes').addEventListener('click', leaveSession);
  $('leave-no').addEventListener('click', () => {
    closeLeave();
    playArea.focus();
  });
  $('leave-confirm').addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && closeLeave()) {
      e.preventDefault();
      playArea.focus();
    }
  });
  $('new-session').addEventListener('click', createSession);
  $('back').addEventListener('click', backToLobby);
  $('copy-code').addEventListener('click', (e) => copyText($('room-code-display').textContent, e.currentTarget));
  $('copy-link').addEventListener('click', (e) => copyText($('share-link').value, e.currentTarget));
  $('share-link').addEventListener('focus', (e) => e.target.select());

  // --- the session's life: lost, regained, ended; people coming and going ------

  client.on('state', () => renderOffline());

  // The room's server is stopping and hands the room to another one: a move,
  // not a fault, so the page says so instead of "connection lost".
  client.on('moving', () => {
    moving = true;
    status.render(MOVING_TEXT);
  });

  client.on('reconnecting', ({ attempt, delayMs, restoring }) => {
    voices.releaseAllRemote();
    if (moving) {
      status.render(MOVING_TEXT);
      renderOffline();
      return;
    }
    if (restoring && attempt === 1) {
      status.render('Taking your seat back…');
      return;
    }
    const retry = `reconnecting (attempt ${attempt}, in ${(delayMs / 1000).toFixed(1)} s)…`;
    status.render(state.view === 'session' ? retry : `Connection lost — ${retry}`);
    renderOffline();
  });

  client.on('resume-failed', () => {
    status.render('The server could not give your seat back; joining the room again…');
  });

  client.on('reconnected', ({ room }) => {
    moving = false;
    status.render();
    if (room) {
      status.clearError();
      enterSession(room);
    }
  });

  client.on('session-ended', ({ roomCode: endedCode, code, message }) => {
    voices.releaseAllRemote();
    input.releaseAll();
    roomCode = null;
    chat.close();
    const why =
      code === 'room_not_found'
        ? `The session ${endedCode} no longer exists: the server could not give your seat back (it restarted too long ago, or forgot the session) and everyone else has left.`
        : code === 'resumed_elsewhere'
          ? `Your seat in session ${endedCode} was taken up in another tab or window; this page has stopped.`
          : `Could not rejoin the session ${endedCode}: ${message}`;
    $('ended-text').textContent = `${why} You can start a new session and share its code with the others.`;
    $('invite').hidden = true;
    showView('ended');
    $('new-session').focus();
  });

  // A seat the page knew that comes back (restored after a server restart) is back, not new.
  roster.onArrival(({ user, back }) => {
    if (state.view === 'session') status.announce(back ? `${user.name} is back` : `${user.name} joined`);
  });

  client.on('session:user-away', (data, envelope) => {
    const who = data && players.lastSeen(data.userId);
    if (state.view !== 'session' || !who || (envelope && envelope.replayed)) return;
    status.announce(data.reason === 'silent' ? `${who.name}: no signal` : `${who.name} lost the connection — reconnecting…`);
  });

  client.on('session:user-back', (data, envelope) => {
    const who = data && players.lastSeen(data.userId);
    if (state.view === 'session' && who && !(envelope && envelope.replayed)) status.announce(`${who.name} is back`);
  });

  client.on('session:user-left', ({ userId }) => {
    const who = players.lastSeen(userId);
    if (state.view === 'session' && who) status.announce(`${who.name} left`);
  });

  return { openLobby, restoreSeat };
}
