// status.js: the status bar, the session banner and error messages.
//
// Owns: the connection state and transport shown in the top bar (one line
// whatever it says; in a session, a link that is down reads "offline — your
// notes are not reaching the room"), its Retry button, the banner over a
// session, the dismissable error alert (one about reaching the server goes by
// itself once the page is connected again, by Retry or on its own), passing
// announcements ("Ben joined", gone after a few seconds, when the view
// changes or when the link goes down), and connecting (so every attempt shows its outcome in the bar). Does not own: the
// connection itself (jam-client.js), or what the page does when a session is
// lost or regained (views.js).

import { describeError } from './errors.js';
import { $ } from './dom.js';

const STATE_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Connection lost — reconnecting…',
  disconnected: 'Disconnected',
};

/** How long a passing announcement stays in the bar. */
const ANNOUNCE_MS = 6000;

/** What the bar says in a session while the link is down. */
export const OFFLINE_TEXT = 'Offline — your notes are not reaching the room';

/**
 * Wires the status bar to `client`. Reads `state.view` (a lost connection
 * earns a banner only in a session).
 */
export function createStatusBar({ client, state }) {
  /** Whether the page is in a session whose link is down. */
  function offline() {
    return state.view === 'session' && client.state !== 'connected';
  }

  /** The bar's words for the client's state. */
  function stateText() {
    return offline() ? OFFLINE_TEXT : STATE_TEXT[client.state] || client.state;
  }

  /** the passing announcement shown, if any, and its timer */
  let announcement = null;
  let announceTimer = null;

  /**
   * Shows the client's state, or `extra` in its place (after "offline" when
   * offline); with no `extra`, a passing announcement still current follows the state.
   */
  function render(extra) {
    const status = $('status');
    status.dataset.state = client.state;
    status.dataset.offline = String(offline());
    const text = extra || (announcement && state.view === 'session' ? `${stateText()} · ${announcement}` : null);
    $('status-text').textContent = offline() && extra ? `${OFFLINE_TEXT} · ${extra}` : text || stateText();
    const t = client.transport;
    $('transport').dataset.transport = t || '';
    $('transport').textContent = t === 'webtransport' ? 'WebTransport' : t === 'websocket' ? 'WebSocket' : '—';
    $('retry').hidden = !(client.state === 'reconnecting' || client.state === 'disconnected');
  }

  /** A passing remark after the connection state, e.g. who joined; gone after a few seconds. */
  function announce(text) {
    announcement = offline() ? null : text;
    clearTimeout(announceTimer);
    announceTimer = setTimeout(clearAnnouncement, ANNOUNCE_MS);
    render(offline() ? text : undefined);
  }

  /** Drops the passing announcement (it expired, or the view changed). */
  function clearAnnouncement() {
    clearTimeout(announceTimer);
    announcement = null;
    render();
  }

  /** whether the error shown is about reaching the server (gone once connected) */
  let linkError = false;

  /** Shows an error; `link`: it is about reaching the server, and goes once the page is connected. */
  function showError(text, { link = false } = {}) {
    $('alert-text').textContent = text;
    $('alert').hidden = false;
    linkError = link;
  }

  function clearError() {
    $('alert').hidden = true;
    $('alert-text').textContent = '';
    linkError = false;
  }

  function setBanner(text) {
    $('session-banner').textContent = text || '';
    $('session-banner').hidden = !text;
  }

  /** Connects, showing the outcome; resolves to whether it worked. */
  async function connect() {
    render();
    try {
      await client.connect();
      if (linkError) clearError();
      render();
      return true;
    } catch (err) {
      render(`Cannot reach the server: ${err.message}`);
      return false;
    }
  }

  client.on('state', ({ state: now }) => {
    if (now === 'connected' && linkError) clearError();
    // What was announced before the link went down is stale once it is back.
    if (now !== 'connected' && announcement) {
      clearTimeout(announceTimer);
      announcement = null;
    }
    render();
  });

  client.on('rejoin-retry', ({ attempt, delayMs }) => {
    render(`Reconnected; waiting for the server to free your old seat (try ${attempt}, in ${(delayMs / 1000).toFixed(1)} s)…`);
  });

  client.on('disconnected', ({ reason }) => {
    render();
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

  return { render, announce, clearAnnouncement, showError, clearError, setBanner, connect, offline };
}
