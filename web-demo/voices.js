// voices.js: notes turned into sound and broadcasts.
//
// Owns: the voices sounding for local notes (and broadcasting them: "on" as
// fast as the transport allows, "off" on the reliable path, so a held note's
// end is never lost) and for notes from the others (heard as `note`
// broadcasts, sounded when playout.js says, into the player's mixer channel,
// not at all when the player is muted), how many inputs or participants hold
// each note (`state.localHeld`, `state.remoteHeld`), releasing a remote note
// on its note-off or when its player drops out or leaves (never on a timer: a
// note may be held as long as its player holds it), and the notes sent / not
// sent / heard counters (a note played while our link is down sounds here but
// is counted as lost, and so is one sent into a link that had gone silent: a
// clock ping follows a played note shortly, and when the link is found dead
// the notes no answered ping vouches for move from "sent" to "lost"). Does not own: where notes come from (input.js), how
// they sound (audio.js), when remote ones sound (playout.js), their level
// (mixer.js) or how keys and lanes light up (play-area.js, remote-view.js).

import { localNow as localNowMs } from './jam-client.js';
import { INSTRUMENTS } from './audio.js';
import { $ } from './dom.js';

/** How many onsets the trace keeps (for the console and the browser tests). */
const TRACE_KEEP = 400;
/** How long a note-off that overtook its note-on is remembered. */
const EARLY_OFF_MS = 3000;
/**
 * How soon after a note a clock ping asks the server to vouch for it (at most
 * one ping per this long: a few a second, well inside the server's 20).
 */
const CONFIRM_AFTER_MS = 150;

function push(list, item) {
  list.push(item);
  if (list.length > TRACE_KEEP) list.shift();
}

/**
 * Reads `state.instrument` (what local notes play); writes `state.localHeld`
 * and `state.remoteHeld`. `players.flash` counts each note against its player.
 */
export function createVoices({ client, synth, state, playArea, players, playout, mixer, remoteView }) {
  /** local voices by note */
  const localVoices = new Map();
  /** `${senderId}:${note}` -> { voice, note, instrument, senderId } */
  const remoteVoices = new Map();
  /** `${senderId}:${note}` -> serverTime of an "off" that arrived before its "on" */
  const earlyOffs = new Map();
  /** visual updates waiting for their playout time */
  const timers = new Set();
  let localCount = 0;
  let unsentCount = 0;
  /**
   * Local times (localNow) of the notes counted as sent that nothing from the
   * server has vouched for yet: the answer to a ping sent after them says they
   * went through (docs/web-demo.md).
   */
  let unconfirmed = [];
  let confirmTimer = null;
  let remoteCount = 0;
  /** What happened, for the console and the tests: sent notes, remote onsets, pings that vouch for notes. */
  const trace = { sent: [], onsets: [], started: new Map(), mutedSkipped: new Map(), confirmPings: 0 };

  function count(map, id) {
    map.set(id, (map.get(id) || 0) + 1);
  }

  // --- local ------------------------------------------------------------------

  function send(type, note, velocity) {
    const payload = { type, note, velocity, instrument: state.instrument };
    // When it was played, on the room clock: steady playout keeps the rhythm by it.
    const at = client.serverNow();
    if (at !== null) payload.at = Math.round(at * 1000) / 1000;
    // A lost "off" would leave a note hanging on every other page: it goes reliably.
    const local = localNowMs();
    // Notes are ephemeral: a player back after a blip hears no burst of stale ones.
    const path = client.broadcast('note', payload, { reliable: type === 'off', ephemeral: true });
    if (path) push(trace.sent, { type, note, at: local, roomAt: payload.at, path });
    return path;
  }

  /** One input presses `note`: sounds it (once, however many inputs hold it) and tells the others. */
  function localOn(note, velocity = 100) {
    if (note < 0 || note > 127) return;
    synth.wake();
    if (playArea.isDrums()) {
      synth.noteOn('drums', note, velocity);
      playArea.hit(note);
    } else {
      const held = state.localHeld.get(note) || 0;
      state.localHeld.set(note, held + 1);
      if (held > 0) return; // already sounding from another input
      const old = localVoices.get(note);
      if (old) old.stop();
      localVoices.set(note, synth.noteOn(state.instrument, note, velocity));
      playArea.paint(note);
    }
    // Offline, the note sounds here but reaches nobody: count it apart.
    if (send('on', note, velocity)) {
      localCount++;
      unconfirmed.push(localNowMs());
      confirmSoon();
      renderCounts();
      if (client.room) players.flash(client.room.userId);
    } else {
      unsentCount++;
      renderCounts();
    }
  }

  function renderCounts() {
    $('local-count').textContent = String(localCount);
    $('local-count').dataset.unconfirmed = String(unconfirmed.length);
    $('unsent-count').textContent = String(unsentCount);
    $('unsent').dataset.shown = String(unsentCount > 0);
  }

  /** Everything sent before local time `t0` reached the server (a ping sent then was answered). */
  function confirmed(t0) {
    const before = unconfirmed.length;
    unconfirmed = unconfirmed.filter((t) => t > t0);
    if (unconfirmed.length !== before) renderCounts();
  }

  /** A ping shortly after the notes just played, whose answer vouches for them. */
  function confirmSoon() {
    if (confirmTimer !== null) return;
    confirmTimer = setTimeout(() => {
      confirmTimer = null;
      if (!unconfirmed.length || client.state !== 'connected') return;
      const t0 = localNowMs();
      trace.confirmPings++;
      client.request('clock:ping', { t0 }).then(() => confirmed(t0), () => {});
    }, CONFIRM_AFTER_MS);
  }

  // The client's own pings (the heartbeat's every second) vouch too.
  client.on('clock:pong', (data) => {
    if (data && typeof data.t0 === 'number') confirmed(data.t0);
  });

  // The link was found dead: what the server never answered for was lost with it.
  client.on('state', ({ state: now }) => {
    if (now === 'connected' || unconfirmed.length === 0) return;
    localCount -= unconfirmed.length;
    unsentCount += unconfirmed.length;
    unconfirmed = [];
    renderCounts();
  });

  /** One input lets go of `note`: it stops when the last one does. */
  function localOff(note) {
    if (playArea.isDrums()) return; // one-shots need no "off"
    const held = state.localHeld.get(note) || 0;
    if (held <= 0) return;
    if (held > 1) {
      state.localHeld.set(note, held - 1);
      return;
    }
    state.localHeld.delete(note);
    const voice = localVoices.get(note);
    if (voice) voice.stop();
    localVoices.delete(note);
    playArea.paint(note);
    send('off', note, 0);
  }

  /** Stops every local note, telling the others. Which inputs held them is input.js's to forget. */
  function releaseAllLocal() {
    for (const note of [...state.localHeld.keys()]) {
      state.localHeld.set(note, 1);
      localOff(note);
    }
    state.localHeld.clear();
  }

  // --- remote -----------------------------------------------------------------

  /** Runs `fn` at local time `localMs` (now when null or past). */
  function at(localMs, fn) {
    const wait = localMs === null ? 0 : localMs - localNowMs();
    if (wait <= 1) {
      fn();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, wait);
    timers.add(timer);
  }

  client.on('event:broadcast', ({ eventName, payload, senderId, serverTime }, envelope) => {
    if (eventName !== 'note' || !payload || typeof payload !== 'object') return;
    // A note replayed after our own reconnect is seconds late: better unheard.
    if (envelope && envelope.replayed) return;
    const note = Number(payload.note);
    if (!Number.isInteger(note) || note < 0 || note > 127) return;
    const sender = client.room && client.room.participants.find((p) => p.id === senderId);
    const instrument = INSTRUMENTS.some((i) => i.id === payload.instrument)
      ? payload.instrument
      : sender && INSTRUMENTS.some((i) => i.id === sender.instrument)
        ? sender.instrument
        : 'piano';
    const when = { serverTime, at: payload.at };
    if (payload.type === 'on') remoteOn(senderId, note, Math.max(1, Math.min(127, Number(payload.velocity) || 100)), instrument, when);
    else if (payload.type === 'off') remoteOff(senderId, note, when);
  });

  function remoteOn(senderId, note, velocity, instrument, when) {
    const { serverTime } = when;
    remoteCount++;
    $('remote-count').textContent = String(remoteCount);
    const key = `${senderId}:${note}`;
    const slot = playout.place(senderId, when);
    endRemote(key, slot.audioTime, slot.localMs);
    const muted = mixer.muted(senderId);
    let voice = { stop() {} };
    if (muted) {
      count(trace.mutedSkipped, senderId);
    } else if (synth.ctx) {
      voice = synth.noteOn(instrument, note, velocity, { when: slot.audioTime ?? undefined, dest: mixer.nodeFor(senderId) });
      count(trace.started, senderId);
    }
    push(trace.onsets, {
      senderId,
      note,
      serverTime,
      mode: playout.mode,
      delayMs: slot.delayMs,
      anchor: slot.anchor ?? null,
      late: slot.late,
      muted,
      // When it sounds, on the audio clock (null: no audio yet).
      audioTime: synth.ctx ? Math.max(synth.ctx.currentTime, slot.audioTime ?? 0) : null,
      arrivedAt: localNowMs(),
    });
    const drums = instrument === 'drums';
    if (!drums) remoteVoices.set(key, { voice, note, instrument, senderId });
    at(slot.localMs, () => {
      players.flash(senderId);
      if (drums) {
        remoteView.hit(senderId, note);
        return;
      }
      state.remoteHeld.set(note, (state.remoteHeld.get(note) || 0) + 1);
      remoteView.noteOn(senderId, note);
    });
    // Its "off" came first (it took the reliable path, the "on" a datagram): end it at the off's time.
    const early = earlyOffs.get(key);
    if (early !== undefined) {
      earlyOffs.delete(key);
      if (typeof serverTime !== 'number' || early.serverTime >= serverTime) remoteOff(senderId, note, early.when);
    }
  }

  /** Ends the note `key` at audio time `audioTime` (now when null), its drawing at `localMs`. */
  function endRemote(key, audioTime, localMs) {
    const entry = remoteVoices.get(key);
    if (!entry) return false;
    remoteVoices.delete(key);
    entry.voice.stop(audioTime ?? undefined);
    at(localMs, () => {
      const held = (state.remoteHeld.get(entry.note) || 1) - 1;
      if (held > 0) state.remoteHeld.set(entry.note, held);
      else state.remoteHeld.delete(entry.note);
      remoteView.noteOff(entry.senderId, entry.note);
    });
    return true;
  }

  function remoteOff(senderId, note, when) {
    const { serverTime } = when;
    const key = `${senderId}:${note}`;
    const slot = playout.place(senderId, when, { onset: false });
    if (endRemote(key, slot.audioTime, slot.localMs)) return;
    if (typeof serverTime === 'number') {
      earlyOffs.set(key, { serverTime, when, at: localNowMs() });
      for (const [k, v] of earlyOffs) if (localNowMs() - v.at > EARLY_OFF_MS) earlyOffs.delete(k);
    }
  }

  /** Stops the notes of a participant who dropped out or left, now. */
  function releaseRemoteFrom(senderId) {
    for (const [key, entry] of [...remoteVoices]) {
      if (entry.senderId === senderId) endRemote(key, null, null);
    }
    playout.forget(senderId);
  }

  // A player whose connection dropped, or who left, sends no "off" for what they held.
  client.on('session:user-away', ({ userId }) => releaseRemoteFrom(userId));
  client.on('session:user-left', ({ userId }) => releaseRemoteFrom(userId));

  /** Stops every remote note (their "off" may never come). */
  function releaseAllRemote() {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    for (const key of [...remoteVoices.keys()]) endRemote(key, null, null);
    state.remoteHeld.clear();
    earlyOffs.clear();
    remoteView.clear();
  }

  /** Remote notes sounding now, as `senderId:note` keys. */
  function heldRemote() {
    return [...remoteVoices.keys()];
  }

  return { localOn, localOff, releaseAllLocal, releaseRemoteFrom, releaseAllRemote, heldRemote, trace };
}
