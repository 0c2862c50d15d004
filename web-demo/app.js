// app.js: the JamSession page, put together and started.
//
// Owns: the connection and the synth the page uses, the page state its parts
// share, building the parts and handing each what it needs, the page's
// arrival (lobby, then connect, or take back the seat a reload left) and
// departure (close without leaving, start afresh from the back/forward
// cache), and the `window.jam` debug hook. Does not own: any view, input or
// sound itself (status.js, views.js, players.js, play-area.js, input.js,
// voices.js, latency.js, tempo.js, metronome.js, playout.js, mixer.js,
// chat.js, remote-view.js, colors.js, roster.js), the connection's workings
// (jam-client.js), how notes sound (audio.js) or the audio clock
// (audio-clock.js).
//
// Each part gets the parts it calls as arguments here instead of importing them
// (input.js imports only play-area.js's key layout, players.js only
// latency.js's arithmetic), so no two modules import each other, and the order
// the parts are built in below is the order in which they depend on one
// another.

import { JamClient } from './jam-client.js';
import { describeError } from './errors.js';
import { Synth } from './audio.js';
import { createStatusBar } from './status.js';
import { createPlayArea } from './play-area.js';
import { createPlayerList } from './players.js';
import { createVoices } from './voices.js';
import { createInput } from './input.js';
import { createViews } from './views.js';
import { createAudioClock } from './audio-clock.js';
import { createColors } from './colors.js';
import { createRoster } from './roster.js';
import { createLatencyReadout } from './latency.js';
import { createMixer } from './mixer.js';
import { createPlayout } from './playout.js';
import { createRemoteView } from './remote-view.js';
import { createMetronome } from './metronome.js';
import { createTempoPanel } from './tempo.js';
import { createChat } from './chat.js';

const params = new URLSearchParams(location.search);
const forcedTransport = ['webtransport', 'websocket'].includes(params.get('transport')) ? params.get('transport') : 'auto';

/**
 * Sign-in (docs/protocol.md §13): on a server that requires it, `?tokenUrl=` names the
 * app's token endpoint, asked with POST {"name"} for {"token"} (the React example's dev
 * endpoint speaks this). Without it, creating or joining there answers `unauthorized`,
 * which the status bar explains.
 */
const tokenUrl = params.get('tokenUrl');
async function getToken() {
  const name = document.getElementById('name').value.trim();
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (!res.ok) throw new Error(`the sign-in endpoint answered ${res.status}`);
  return (await res.json()).token;
}

const client = new JamClient({
  transport: forcedTransport,
  describeError,
  ...(tokenUrl ? { getToken } : {}),
});
const synth = new Synth();

/** What more than one part reads; each part keeps its own bookkeeping to itself. */
const state = {
  /** 'lobby' | 'session' | 'ended': written by views.js */
  view: 'lobby',
  /** the instrument local notes play: written by views.js */
  instrument: 'piano',
  /** the keyboard's lowest note: written by views.js (a new room) and input.js (octave) */
  base: 60,
  /** how many keys the keyboard shows (fewer on a phone): written by play-area.js */
  keyCount: 25,
  /** note -> number of local holders (pointer, key, MIDI): written by voices.js */
  localHeld: new Map(),
  /** note -> number of remote holders: written by voices.js */
  remoteHeld: new Map(),
};

const audioClock = createAudioClock(synth);
const roster = createRoster({ client });
const colors = createColors({ roster });
const status = createStatusBar({ client, state });
createLatencyReadout({ client });
const playArea = createPlayArea({ state });
const mixer = createMixer({ client, synth });
const players = createPlayerList({ client, colors, mixer, roster });
const remoteView = createRemoteView({ client, colors, playArea, roster });
const playout = createPlayout({ client, audioClock, names: (id) => (players.lastSeen(id) || { name: 'someone' }).name });
const voices = createVoices({ client, synth, state, playArea, players, playout, mixer, remoteView });
const input = createInput({ state, synth, playArea, voices });
const metronome = createMetronome({ client, synth, audioClock });
const tempoPanel = createTempoPanel({ client, state, status, roster });
const chat = createChat({ client, colors, roster, focusPlay: () => playArea.focus() });
const views = createViews({ client, state, status, playArea, players, voices, input, tempoPanel, remoteView, chat, roster });

// Debug hook, not an interface for the page's own code (the parts get what they
// need as arguments): `window.jam.client` is the JamClient, for the console and
// for the browser tests (web-demo/e2e), which watch its state, stats and events;
// `window.jam.state` is the shared state above; `window.jam.parts` the parts
// whose workings the tests read (the metronome's clicks, the remote onsets in
// `voices.trace`, the playout delays, the audio clock).
window.jam = { client, state, parts: { synth, audioClock, metronome, playout, mixer, voices, colors, roster } };

// Leaving the page (a reload, a closed tab, navigating away): close the
// connection without leaving the room. The server holds the seat for its resume
// window and the client keeps the seat in sessionStorage, so a reload takes it
// back; a closed tab's seat goes when the window ends. The Leave button is how a
// player leaves at once.
window.addEventListener('pagehide', () => client.close('page closed'));
// Coming back from the back/forward cache: that client is closed, so start
// afresh (and take the seat back).
window.addEventListener('pageshow', (e) => {
  if (e.persisted) location.reload();
});

function start() {
  views.openLobby({ name: params.get('name'), invited: params.get('room') });
  input.renderMidiStatus();
  // A reload in a session takes its seat back; otherwise connect and wait in the lobby.
  if (!views.restoreSeat()) status.connect();
}

start();
