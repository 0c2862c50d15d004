// app.js: the JamSession page.
//
// Owns: the page's views (lobby, session, session ended), the participant
// list, the on-screen keyboard and drum pads, computer-keyboard and Web MIDI
// input, and turning notes into sound and broadcasts. Does not own: the
// connection (jam-client.js) or how notes sound (audio.js).

import { JamClient, describeError } from './jam-client.js';
import { INSTRUMENTS, DRUM_PADS, Synth, drumPadFor, noteName } from './audio.js';

const $ = (id) => document.getElementById(id);

/** Computer keys, by physical position, to semitones above the octave's C. */
const DAW_KEYS = ['KeyA', 'KeyW', 'KeyS', 'KeyE', 'KeyD', 'KeyF', 'KeyT', 'KeyG', 'KeyY', 'KeyH', 'KeyU', 'KeyJ', 'KeyK'];
const DAW_LABELS = ['A', 'W', 'S', 'E', 'D', 'F', 'T', 'G', 'Y', 'H', 'U', 'J', 'K'];
const BLACK = new Set([1, 3, 6, 8, 10]);
const KEY_COUNT = 25; // two octaves and the top C
const DEFAULT_BASE = { bass: 36 };
/** A remote note longer than this is released anyway (its "off" may have been lost). */
const REMOTE_NOTE_MAX_MS = 8000;

const params = new URLSearchParams(location.search);
const forcedTransport = ['webtransport', 'websocket'].includes(params.get('transport')) ? params.get('transport') : 'auto';

const client = new JamClient({ transport: forcedTransport });
const synth = new Synth();

const state = {
  view: 'lobby',
  instrument: 'piano',
  base: 60,
  localCount: 0,
  remoteCount: 0,
  /** note -> number of local holders (pointer, key, MIDI) */
  localHeld: new Map(),
  /** local voices by note */
  localVoices: new Map(),
  /** `${senderId}:${note}` -> { voice, timer, note } */
  remoteVoices: new Map(),
  /** note -> number of remote holders */
  remoteHeld: new Map(),
  /** computer key code -> note it started */
  keysDown: new Map(),
  /** pointer id -> note */
  pointers: new Map(),
  /** participant id -> notes heard from them */
  perParticipant: new Map(),
  lastParticipants: [],
  /** the room the page shows (kept while rejoining) */
  roomCode: null,
};

// Tests and curious people can reach the client from the console.
window.jam = { client, state };

// ---------------------------------------------------------------------------
// Small helpers

function store(key, value) {
  try {
    localStorage.setItem(`jam.${key}`, value);
  } catch {
    /* storage may be off */
  }
}

function load(key) {
  try {
    return localStorage.getItem(`jam.${key}`);
  } catch {
    return null;
  }
}

function hueFor(id) {
  let h = 0;
  for (const c of String(id)) h = (h * 31 + c.codePointAt(0)) % 360;
  return h;
}

function instrumentLabel(id) {
  const found = INSTRUMENTS.find((i) => i.id === id);
  return found ? found.label : id || 'No instrument';
}

/** Line icons drawn inline (no emoji: the machine may have no emoji font). */
const ICON_PATHS = {
  piano: '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="M7.5 5v8M12 5v8M16.5 5v8M3 13h18"/>',
  synth: '<path d="M2 17 8 7v10l6-10v10l6-10v10"/>',
  bass: '<circle cx="8" cy="16" r="5"/><circle cx="8" cy="16" r="1.2"/><path d="m11.5 12.5 8-8M18 3l3 3"/>',
  organ: '<path d="M5 20V11M9 20V7M13 20V4M17 20V8M21 20V12M3 20.5h20"/>',
  drums: '<ellipse cx="12" cy="10" rx="8" ry="3"/><path d="M4 10v6c0 1.7 3.6 3 8 3s8-1.3 8-3v-6M7 2.5l4 5M17 2.5l-4 5"/>',
  other: '<path d="M9 18V5l11-2v13"/><circle cx="6" cy="18" r="3"/><circle cx="17" cy="16" r="3"/>',
};

function instrumentIcon(id) {
  const span = document.createElement('span');
  span.className = 'icon';
  span.setAttribute('aria-hidden', 'true');
  span.innerHTML = `<svg viewBox="0 0 24 24" width="1em" height="1em" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">${ICON_PATHS[id] || ICON_PATHS.other}</svg>`;
  return span;
}

/** An instrument's icon and name. */
function instrumentBadge(id) {
  const span = document.createElement('span');
  span.className = 'instrument-badge';
  const text = document.createElement('span');
  text.textContent = instrumentLabel(id);
  span.append(instrumentIcon(id), text);
  return span;
}

function showError(text) {
  $('alert-text').textContent = text;
  $('alert').hidden = false;
}

function clearError() {
  $('alert').hidden = true;
  $('alert-text').textContent = '';
}

function setBanner(text) {
  $('session-banner').textContent = text || '';
  $('session-banner').hidden = !text;
}

function setBusy(busy) {
  for (const id of ['create', 'join', 'new-session']) $(id).disabled = busy;
}

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

// ---------------------------------------------------------------------------
// Status bar

const STATE_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Connection lost — reconnecting…',
  disconnected: 'Disconnected',
};

function renderStatus(extra) {
  const status = $('status');
  status.dataset.state = client.state;
  $('status-text').textContent = extra || STATE_TEXT[client.state] || client.state;
  const t = client.transport;
  $('transport').dataset.transport = t || '';
  $('transport').textContent = t === 'webtransport' ? 'WebTransport' : t === 'websocket' ? 'WebSocket' : '—';
  $('retry').hidden = !(client.state === 'reconnecting' || client.state === 'disconnected');
}

client.on('state', () => renderStatus());

client.on('reconnecting', ({ attempt, delayMs }) => {
  renderStatus(`Connection lost — reconnecting (attempt ${attempt}, in ${(delayMs / 1000).toFixed(1)} s)…`);
  releaseAllRemote();
  if (state.view === 'session') {
    setBanner('Connection lost. Reconnecting… you will rejoin the room as a new seat; the others see you leave and come back.');
    renderParticipants();
  }
});

client.on('rejoin-retry', ({ attempt, delayMs }) => {
  renderStatus(`Reconnected; waiting for the server to free your old seat (try ${attempt}, in ${(delayMs / 1000).toFixed(1)} s)…`);
});

client.on('reconnected', ({ room }) => {
  renderStatus();
  if (room) {
    setBanner('');
    clearError();
    enterSession(room);
  }
});

client.on('session-ended', ({ roomCode, code, message }) => {
  releaseAllRemote();
  releaseAllLocal();
  state.roomCode = null;
  const why =
    code === 'room_not_found'
      ? `The session ${roomCode} no longer exists: the server restarted or everyone left while you were disconnected.`
      : `Could not rejoin the session ${roomCode}: ${message}`;
  $('ended-text').textContent = `${why} You can start a new session and share its code with the others.`;
  showView('ended');
  $('new-session').focus();
});

client.on('disconnected', ({ reason }) => {
  renderStatus();
  if (state.view === 'session') setBanner(`Disconnected from the server (${reason}).`);
});

// Errors that answer no request of ours (requests show their own failure).
client.on('error', (data, envelope) => {
  if (envelope.id === undefined) showError(describeError(data));
});

$('retry').addEventListener('click', () => {
  if (client.state === 'reconnecting') client.reconnectNow();
  else connect();
});

$('alert-close').addEventListener('click', clearError);

async function connect() {
  renderStatus();
  try {
    await client.connect();
    renderStatus();
    return true;
  } catch (err) {
    renderStatus(`Cannot reach the server: ${err.message}`);
    return false;
  }
}

// ---------------------------------------------------------------------------
// Views

function showView(view) {
  state.view = view;
  $('lobby').hidden = view !== 'lobby';
  $('session').hidden = view !== 'session';
  $('ended').hidden = view !== 'ended';
  document.body.dataset.view = view;
}

function renderInstrumentPicker() {
  const box = $('instrument-options');
  box.replaceChildren();
  for (const inst of INSTRUMENTS) {
    const label = document.createElement('label');
    label.className = 'instrument-option';
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'instrument';
    input.value = inst.id;
    input.dataset.testid = `instrument-${inst.id}`;
    input.checked = inst.id === state.instrument;
    input.addEventListener('change', () => {
      state.instrument = inst.id;
      store('instrument', inst.id);
    });
    const icon = instrumentIcon(inst.id);
    icon.classList.add('instrument-icon');
    const text = document.createElement('span');
    text.textContent = inst.label;
    label.append(input, icon, text);
    box.append(label);
  }
}

function readName() {
  const name = $('name').value.trim();
  if (!name) {
    showError('Please enter a display name first.');
    $('name').focus();
    return null;
  }
  if ([...name].length > 32) {
    showError('Names can have at most 32 characters.');
    $('name').focus();
    return null;
  }
  store('name', name);
  return name;
}

async function ensureConnected() {
  if (client.state === 'connected') return true;
  if (client.state === 'reconnecting') {
    showError('Still reconnecting to the server; try again in a moment.');
    return false;
  }
  const ok = await connect();
  if (!ok) showError('Cannot reach the server. Check that it is running, then press Retry now.');
  return ok;
}

async function createSession() {
  clearError();
  const name = readName();
  if (!name) return;
  setBusy(true);
  try {
    if (!(await ensureConnected())) return;
    const room = await client.create({ name, instrument: state.instrument });
    enterSession(room);
  } catch (err) {
    showError(`Could not create the session: ${describeError(err)}`);
  } finally {
    setBusy(false);
  }
}

async function joinSession(event) {
  if (event) event.preventDefault();
  clearError();
  const name = readName();
  if (!name) return;
  const roomCode = $('room-code').value.trim();
  if (!roomCode) {
    showError('Please enter the room code you were given.');
    $('room-code').focus();
    return;
  }
  setBusy(true);
  try {
    if (!(await ensureConnected())) return;
    const room = await client.join({ roomCode, name, instrument: state.instrument });
    enterSession(room);
  } catch (err) {
    showError(`Could not join ${roomCode.toUpperCase()}: ${describeError(err)}`);
  } finally {
    setBusy(false);
  }
}

function shareLink(roomCode) {
  return `${location.origin}${location.pathname}?room=${encodeURIComponent(roomCode)}`;
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
  // A rejoin after a reconnect keeps the octave the player had chosen.
  if (state.roomCode !== room.roomCode) state.base = DEFAULT_BASE[state.instrument] ?? 60;
  state.roomCode = room.roomCode;
  setBanner('');
  showView('session');
  renderPlayArea();
  renderParticipants();
  if (!document.activeElement || document.activeElement === document.body || $('lobby').contains(document.activeElement) || $('ended').contains(document.activeElement)) {
    focusPlayArea();
  }
}

/** Shows the lobby and drops `?room=` from the address. */
function backToLobby() {
  state.roomCode = null;
  const url = new URL(location.href);
  url.searchParams.delete('room');
  history.replaceState(null, '', url);
  $('room-code').value = '';
  $('invite').hidden = true;
  showView('lobby');
  $('create').focus();
}

async function leaveSession() {
  releaseAllLocal();
  releaseAllRemote();
  try {
    await client.leave();
  } catch {
    // Leaving is best effort: the server drops our seat when the connection goes anyway.
  }
  backToLobby();
}

$('create').addEventListener('click', createSession);
$('join-form').addEventListener('submit', joinSession);
$('leave').addEventListener('click', leaveSession);
$('new-session').addEventListener('click', createSession);
$('back').addEventListener('click', backToLobby);
$('copy-code').addEventListener('click', (e) => copyText($('room-code-display').textContent, e.currentTarget));
$('copy-link').addEventListener('click', (e) => copyText($('share-link').value, e.currentTarget));
$('share-link').addEventListener('focus', (e) => e.target.select());

// ---------------------------------------------------------------------------
// Participants

client.on('room', () => renderParticipants());

client.on('session:user-joined', ({ user }) => {
  if (state.view === 'session' && user) announce(`${user.name} joined`);
});

client.on('session:user-left', ({ userId }) => {
  const who = state.lastParticipants.find((p) => p.id === userId);
  releaseRemoteFrom(userId);
  if (state.view === 'session' && who) announce(`${who.name} left`);
});

function announce(text) {
  renderStatus(`${STATE_TEXT[client.state]} · ${text}`);
}

function renderParticipants() {
  const room = client.room;
  const list = $('participants');
  const stale = !room;
  const people = room ? room.participants : state.lastParticipants;
  if (room) state.lastParticipants = room.participants;
  list.classList.toggle('stale', stale);
  $('people-count').textContent = String(people.length);
  list.replaceChildren(
    ...people.map((p) => {
      const li = document.createElement('li');
      li.className = 'participant';
      li.dataset.testid = 'participant';
      li.dataset.userId = p.id;
      li.dataset.name = p.name;
      li.dataset.notes = String(state.perParticipant.get(p.id) || 0);
      li.style.setProperty('--hue', hueFor(p.id));
      const isYou = room && p.id === room.userId;
      const isHost = room && p.id === room.hostId;
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

function flashParticipant(id) {
  state.perParticipant.set(id, (state.perParticipant.get(id) || 0) + 1);
  const li = [...$('participants').children].find((el) => el.dataset.userId === id);
  if (!li) return;
  li.dataset.notes = String(state.perParticipant.get(id));
  restartAnimation(li, 'playing');
}

/** Plays a one-shot CSS animation again, even while the last one runs. */
function restartAnimation(el, className) {
  el.classList.remove(className);
  void el.offsetWidth; // a reflow, so removing and adding the class counts as a change
  el.classList.add(className);
}

// ---------------------------------------------------------------------------
// Keyboard and pads

function isDrums() {
  return state.instrument === 'drums';
}

function renderPlayArea() {
  const drums = isDrums();
  $('keyboard').hidden = drums;
  $('pads').hidden = !drums;
  $('octave-controls').hidden = drums;
  if (drums) renderPads();
  else renderKeyboard();
}

function renderKeyboard() {
  const kb = $('keyboard');
  kb.replaceChildren();
  const whites = [];
  for (let i = 0; i < KEY_COUNT; i++) if (!BLACK.has(i % 12)) whites.push(i);
  kb.style.setProperty('--whites', whites.length);
  let whiteIndex = 0;
  for (let i = 0; i < KEY_COUNT; i++) {
    const note = state.base + i;
    const black = BLACK.has(i % 12);
    const key = document.createElement('button');
    key.type = 'button';
    key.className = `key ${black ? 'black' : 'white'}`;
    key.dataset.note = String(note);
    key.dataset.testid = `key-${note}`;
    key.tabIndex = i === 0 ? 0 : -1;
    key.setAttribute('aria-label', noteName(note));
    key.setAttribute('aria-pressed', 'false');
    if (black) {
      // Black keys sit on the line between two white keys.
      key.style.setProperty('--pos', whiteIndex);
    } else {
      key.style.setProperty('--pos', whiteIndex);
      whiteIndex++;
    }
    if (i < DAW_LABELS.length) {
      const hint = document.createElement('span');
      hint.className = 'key-hint';
      hint.setAttribute('aria-hidden', 'true');
      hint.textContent = DAW_LABELS[i];
      key.append(hint);
    }
    if (i % 12 === 0) {
      const label = document.createElement('span');
      label.className = 'key-name';
      label.setAttribute('aria-hidden', 'true');
      label.textContent = noteName(note);
      key.append(label);
    }
    kb.append(key);
  }
  $('octave-label').textContent = `${noteName(state.base)}–${noteName(state.base + KEY_COUNT - 1)}`;
  for (const note of new Set([...state.localHeld.keys(), ...state.remoteHeld.keys()])) paintNote(note);
}

function renderPads() {
  const pads = $('pads');
  pads.replaceChildren(
    ...DRUM_PADS.map((pad, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = `pad pad-${pad.id}`;
      b.dataset.note = String(pad.note);
      b.dataset.testid = `pad-${pad.id}`;
      b.setAttribute('aria-label', `${pad.label} (key ${DAW_LABELS[i]})`);
      const label = document.createElement('span');
      label.textContent = pad.label;
      const hint = document.createElement('span');
      hint.className = 'key-hint';
      hint.setAttribute('aria-hidden', 'true');
      hint.textContent = DAW_LABELS[i];
      b.append(label, hint);
      return b;
    }),
  );
}

function focusPlayArea() {
  const first = isDrums() ? $('pads').querySelector('.pad') : $('keyboard').querySelector('.key[tabindex="0"]');
  if (first) first.focus({ preventScroll: true });
}

function elementForNote(note) {
  const area = isDrums() ? $('pads') : $('keyboard');
  if (isDrums()) note = drumPadFor(note).note;
  return area.querySelector(`[data-note="${note}"]`);
}

function paintNote(note) {
  const el = elementForNote(note);
  if (!el) return;
  const local = (state.localHeld.get(note) || 0) > 0;
  const remote = (state.remoteHeld.get(note) || 0) > 0;
  el.classList.toggle('active', local);
  el.classList.toggle('remote', remote);
  el.setAttribute('aria-pressed', String(local));
}

function shiftOctave(delta) {
  const next = state.base + 12 * delta;
  if (next < 12 || next + KEY_COUNT - 1 > 127) return;
  releaseAllLocal();
  state.base = next;
  renderKeyboard();
}

$('octave-down').addEventListener('click', () => shiftOctave(-1));
$('octave-up').addEventListener('click', () => shiftOctave(1));

// --- playing: local -----------------------------------------------------------

function localOn(note, velocity = 100) {
  if (note < 0 || note > 127) return;
  synth.wake();
  if (isDrums()) {
    synth.noteOn('drums', note, velocity);
    const el = elementForNote(note);
    if (el) restartAnimation(el, 'hit'); // drums are one-shots: light the pad briefly
  } else {
    const held = state.localHeld.get(note) || 0;
    state.localHeld.set(note, held + 1);
    if (held > 0) return; // already sounding from another input
    const old = state.localVoices.get(note);
    if (old) old.stop();
    state.localVoices.set(note, synth.noteOn(state.instrument, note, velocity));
    paintNote(note);
  }
  state.localCount++;
  $('local-count').textContent = String(state.localCount);
  if (client.room) flashParticipant(client.room.userId);
  client.broadcast('note', { type: 'on', note, velocity, instrument: state.instrument });
}

function localOff(note) {
  if (isDrums()) return; // one-shots need no "off"
  const held = state.localHeld.get(note) || 0;
  if (held <= 0) return;
  if (held > 1) {
    state.localHeld.set(note, held - 1);
    return;
  }
  state.localHeld.delete(note);
  const voice = state.localVoices.get(note);
  if (voice) voice.stop();
  state.localVoices.delete(note);
  paintNote(note);
  client.broadcast('note', { type: 'off', note, velocity: 0, instrument: state.instrument });
}

function releaseAllLocal() {
  for (const note of [...state.localHeld.keys()]) {
    state.localHeld.set(note, 1);
    localOff(note);
  }
  state.localHeld.clear();
  state.keysDown.clear();
  state.pointers.clear();
}

// --- playing: remote ----------------------------------------------------------

client.on('event:broadcast', ({ eventName, payload, senderId }) => {
  if (eventName !== 'note' || !payload || typeof payload !== 'object') return;
  const note = Number(payload.note);
  if (!Number.isInteger(note) || note < 0 || note > 127) return;
  const sender = client.room && client.room.participants.find((p) => p.id === senderId);
  const instrument = INSTRUMENTS.some((i) => i.id === payload.instrument)
    ? payload.instrument
    : sender && INSTRUMENTS.some((i) => i.id === sender.instrument)
      ? sender.instrument
      : 'piano';
  if (payload.type === 'on') remoteOn(senderId, note, Number(payload.velocity) || 100, instrument);
  else if (payload.type === 'off') remoteOff(senderId, note);
});

function remoteOn(senderId, note, velocity, instrument) {
  state.remoteCount++;
  $('remote-count').textContent = String(state.remoteCount);
  flashParticipant(senderId);
  const key = `${senderId}:${note}`;
  remoteOff(senderId, note);
  const voice = synth.ctx ? synth.noteOn(instrument, note, velocity) : { stop() {} };
  if (instrument === 'drums') {
    const el = isDrums() ? elementForNote(note) : null;
    if (el) restartAnimation(el, 'hit'); // drums are one-shots: light the pad briefly
    return;
  }
  const timer = setTimeout(() => remoteOff(senderId, note), REMOTE_NOTE_MAX_MS);
  state.remoteVoices.set(key, { voice, timer, note });
  state.remoteHeld.set(note, (state.remoteHeld.get(note) || 0) + 1);
  const el = elementForNote(note);
  if (el && !isDrums()) {
    el.style.setProperty('--remote-hue', hueFor(senderId));
    paintNote(note);
  }
}

function remoteOff(senderId, note) {
  const key = `${senderId}:${note}`;
  const entry = state.remoteVoices.get(key);
  if (!entry) return;
  state.remoteVoices.delete(key);
  clearTimeout(entry.timer);
  entry.voice.stop();
  const held = (state.remoteHeld.get(note) || 1) - 1;
  if (held > 0) state.remoteHeld.set(note, held);
  else state.remoteHeld.delete(note);
  if (!isDrums()) paintNote(note);
}

function releaseRemoteFrom(senderId) {
  for (const [key, entry] of [...state.remoteVoices]) {
    if (key.startsWith(`${senderId}:`)) remoteOff(senderId, entry.note);
  }
}

function releaseAllRemote() {
  for (const [key, entry] of [...state.remoteVoices]) remoteOff(key.slice(0, key.lastIndexOf(':')), entry.note);
}

// --- input: pointer (mouse, touch, pen) ---------------------------------------

function noteFromEvent(e) {
  const el = e.target.closest('[data-note]');
  return el ? Number(el.dataset.note) : null;
}

for (const area of [$('keyboard'), $('pads')]) {
  area.addEventListener('pointerdown', (e) => {
    const note = noteFromEvent(e);
    if (note === null || e.button > 0) return;
    e.preventDefault();
    // Touch captures the pointer on its first target; release it so a slide plays the next keys.
    if (e.target.hasPointerCapture && e.target.hasPointerCapture(e.pointerId)) e.target.releasePointerCapture(e.pointerId);
    const velocity = e.pressure && e.pointerType === 'pen' ? Math.round(40 + 87 * e.pressure) : 100;
    state.pointers.set(e.pointerId, note);
    localOn(note, velocity);
  });
  area.addEventListener('pointerover', (e) => {
    if (!state.pointers.has(e.pointerId) || isDrums()) return;
    const note = noteFromEvent(e);
    const old = state.pointers.get(e.pointerId);
    if (note === null || note === old) return;
    localOff(old);
    state.pointers.set(e.pointerId, note);
    localOn(note);
  });
  area.addEventListener('pointerleave', (e) => pointerEnd(e));
  // Long-press on touch screens opens menus otherwise.
  area.addEventListener('contextmenu', (e) => e.preventDefault());
}

function pointerEnd(e) {
  if (!state.pointers.has(e.pointerId)) return;
  const note = state.pointers.get(e.pointerId);
  state.pointers.delete(e.pointerId);
  localOff(note);
}

window.addEventListener('pointerup', pointerEnd);
window.addEventListener('pointercancel', pointerEnd);

// --- input: keyboard ------------------------------------------------------------

function typingInField(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

// Arrow keys move focus between on-screen keys; Space and Enter play the focused one.
for (const area of [$('keyboard'), $('pads')]) {
  area.addEventListener('keydown', (e) => {
    const keys = [...area.querySelectorAll('[data-note]')];
    const i = keys.indexOf(document.activeElement);
    if (i < 0) return;
    let next = null;
    if (e.key === 'ArrowRight' || e.key === 'ArrowUp') next = keys[Math.min(keys.length - 1, i + 1)];
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowDown') next = keys[Math.max(0, i - 1)];
    else if (e.key === 'Home') next = keys[0];
    else if (e.key === 'End') next = keys[keys.length - 1];
    if (next) {
      e.preventDefault();
      for (const k of keys) k.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
      return;
    }
    if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) {
      e.preventDefault();
      const note = Number(keys[i].dataset.note);
      state.keysDown.set(`focus:${e.key}`, note);
      localOn(note);
    }
  });
  area.addEventListener('keyup', (e) => {
    const id = `focus:${e.key}`;
    if (state.keysDown.has(id)) {
      e.preventDefault();
      localOff(state.keysDown.get(id));
      state.keysDown.delete(id);
    }
  });
}

document.addEventListener('keydown', (e) => {
  if (state.view !== 'session' || e.ctrlKey || e.metaKey || e.altKey || typingInField(e.target)) return;
  if (e.code === 'KeyZ' || e.code === 'KeyX') {
    if (!e.repeat && !isDrums()) shiftOctave(e.code === 'KeyZ' ? -1 : 1);
    e.preventDefault();
    return;
  }
  const index = DAW_KEYS.indexOf(e.code);
  if (index < 0) return;
  e.preventDefault();
  if (e.repeat || state.keysDown.has(e.code)) return;
  let note;
  if (isDrums()) {
    if (index >= DRUM_PADS.length) return;
    note = DRUM_PADS[index].note;
  } else {
    note = state.base + index;
  }
  state.keysDown.set(e.code, note);
  localOn(note, e.shiftKey ? 127 : 100);
});

document.addEventListener('keyup', (e) => {
  if (!state.keysDown.has(e.code)) return;
  const note = state.keysDown.get(e.code);
  state.keysDown.delete(e.code);
  localOff(note);
});

// A key released while the window had no focus never sends keyup.
window.addEventListener('blur', () => releaseAllLocal());

// --- input: Web MIDI --------------------------------------------------------------

let midiAccess = null;

function midiSupported() {
  return typeof navigator.requestMIDIAccess === 'function';
}

function renderMidiStatus() {
  const button = $('midi');
  const status = $('midi-status');
  if (!midiSupported()) {
    button.hidden = true;
    status.textContent = 'MIDI keyboards: not supported by this browser';
    return;
  }
  if (!midiAccess) {
    button.hidden = false;
    status.textContent = '';
    return;
  }
  button.hidden = true;
  const names = [...midiAccess.inputs.values()].map((i) => i.name || 'MIDI input');
  status.textContent = names.length ? `MIDI: ${names.join(', ')}` : 'MIDI: plug in a keyboard';
}

function handleMidi(e) {
  const [status, note, velocity] = e.data;
  const kind = status & 0xf0;
  if (kind === 0x90 && velocity > 0) localOn(note, velocity);
  else if (kind === 0x80 || (kind === 0x90 && velocity === 0)) localOff(note);
}

function attachMidiInputs() {
  for (const input of midiAccess.inputs.values()) input.onmidimessage = handleMidi;
  renderMidiStatus();
}

$('midi').addEventListener('click', async () => {
  synth.wake();
  try {
    midiAccess = await navigator.requestMIDIAccess();
    midiAccess.onstatechange = attachMidiInputs;
    attachMidiInputs();
  } catch (err) {
    $('midi-status').textContent = `MIDI not available: ${err.message || err.name}`;
  }
});

// Any gesture may start the audio (browsers require one).
for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, () => synth.wake(), { capture: true, passive: true });

// Leaving the page: close cleanly so the others see us go at once.
window.addEventListener('pagehide', () => client.close('page closed'));
// Coming back from the back/forward cache: that client is closed, so start afresh.
window.addEventListener('pageshow', (e) => {
  if (e.persisted) location.reload();
});

// ---------------------------------------------------------------------------
// Start

function start() {
  const savedInstrument = load('instrument');
  if (INSTRUMENTS.some((i) => i.id === savedInstrument)) state.instrument = savedInstrument;
  renderInstrumentPicker();
  renderMidiStatus();
  $('name').value = params.get('name') || load('name') || '';
  const invited = params.get('room');
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
  connect();
}

start();
