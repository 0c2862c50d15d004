// client.js: JamClient, a connection to a jam-server with one API over
// WebTransport or WebSocket.
//
// Owns: reaching the server (`GET /connect`, its protocol version and a
// refused origin, then WebTransport with WebSocket as the fallback), the
// envelope and request ids, the heartbeat that notices a silently dead link,
// reconnecting with backoff and taking the seat back (`session:resume`, or a
// fresh join), the sequence numbers that drop duplicates and mark replays,
// feeding the clock estimate with its own pings, the room's tempo timeline,
// and emitting every event the page hears. Does not own: the transports'
// framing (websocket.js, webtransport.js), how a message changes the room
// (room.js), the clock and tempo arithmetic (clock.js, tempo.js), storage
// (seat-store.js), the app's sign-in tokens and their refresh (sign-in.js) or
// the words of errors (errors.js). The API is described in
// jam-client.d.ts and the package README.

import { PROTOCOL_VERSION, VERSION } from './version.js';
import { ERROR_CODES, JamError, describeError, withTimeout } from './errors.js';
import { ClockEstimator, localNow, now } from './clock.js';
import { TempoTimeline, parseTempo } from './tempo.js';
import { expectedDelayMs } from './latency.js';
import { SeatStore } from './seat-store.js';
import { SignIn } from './sign-in.js';
import { isSeatAnswer, reduceRoom } from './room.js';
import { openWebSocket } from './websocket.js';
import { openWebTransport } from './webtransport.js';

/** Answers that settle a request carrying an `id`. */
const ANSWER_EVENTS = new Set(['session:created', 'session:joined', 'session:resumed', 'session:left', 'clock:pong', 'tempo:changed', 'auth:refreshed', 'error']);

/** Errors that mean the connection, not the request, failed. */
const LINK_ERRORS = new Set(['disconnected', 'not_connected', 'timeout']);

const DEFAULTS = {
  /** Where `/connect` lives; defaults to the page's own origin (required outside a page). */
  baseUrl: undefined,
  /**
   * The WebSocket constructor; defaults to the global one. Node 20 has none:
   * pass `WebSocket` from the `ws` package.
   */
  WebSocket: undefined,
  /** The WebTransport constructor; defaults to the global one (browsers that have it). */
  WebTransport: undefined,
  /** The `fetch` that asks `/connect`; defaults to the global one. */
  fetch: undefined,
  /**
   * Turns an error into the text the client's own events carry (`message` of
   * `resume-failed` and `session-ended`): an app passes its own wording here;
   * the default is `describeError`.
   */
  describeError: undefined,
  /**
   * Signing in with the app's tokens (docs/protocol.md §13): a function, sync or
   * async, that returns the JWT the app's backend signed for this user. On a
   * server that asks for tokens (`auth` in `/connect`) the client calls it for
   * every create and join, and again to refresh the seat's token while a
   * quarter of its lifetime is left. Undefined: no token is ever sent.
   */
  getToken: undefined,
  /** 'auto' | 'webtransport' | 'websocket'. */
  transport: 'auto',
  /** How long WebTransport may take to open before falling back. */
  webTransportTimeoutMs: 3000,
  /** How long a WebSocket may take to open. */
  webSocketTimeoutMs: 5000,
  /** How long `/connect` may take. */
  fetchTimeoutMs: 5000,
  /** How long a request waits for its answer. */
  requestTimeoutMs: 10000,
  /** Reconnect on its own after a lost connection. */
  reconnect: true,
  /** First reconnect delay; doubles per failed attempt, up to the cap. */
  reconnectBaseMs: 500,
  /**
   * Longest delay between reconnect attempts: well inside the server's resume
   * window (30 s by default), so a seat is not lost to a long backoff.
   */
  reconnectMaxMs: 5000,
  /** Give up after this many failed attempts in a row (Infinity: never). */
  reconnectMaxAttempts: Infinity,
  /**
   * Servers without `resume` (protocol 1.0) only: how often a rejoin answered
   * `name_taken` is tried again, until the server notices the old connection
   * died and frees the name. A server with `resume` holds the seat on purpose,
   * so there a `name_taken` after `resume_failed` is final.
   */
  rejoinNameTakenRetries: 10,
  /** How often the heartbeat (`clock:ping` on the reliable path) goes out; 0 turns it off. */
  heartbeatIntervalMs: 1000,
  /**
   * The link counts as dead after this long without anything from the server on
   * the reliable path while a heartbeat waits for its answer; the client then
   * drops it and reconnects.
   */
  heartbeatTimeoutMs: 3500,
  /**
   * Where the seat (room code, resume token, last `seq`) is kept so a reload
   * resumes it: `sessionStorage` by default (one per tab); `null` keeps it in
   * memory only. Anything with getItem/setItem/removeItem works.
   */
  storage: undefined,
  /** The key of the seat in `storage`. */
  storageKey: 'jam.seat',
  /** A WebTransport datagram limit to assume when the browser does not report one. */
  fallbackMaxDatagramSize: 1000,
  /**
   * Clock pings sent at once when a connection opens (servers with `clock`
   * only), so the estimate is good before the first note; the server answers
   * at most 20 a second, heartbeat included.
   */
  clockBurst: 8,
  /** Time between the pings of that burst. */
  clockBurstSpacingMs: 25,
  /**
   * After the burst, one clock ping this often: a datagram over WebTransport;
   * over WebSocket the heartbeat's pings are the samples, and this interval
   * applies only when the heartbeat is off. 0 turns the pings after the burst off.
   */
  clockIntervalMs: 1000,
};
/**
 * The key of the test hook that drops the transport underneath a client as a
 * network fault would: `client[Symbol.for('jam-client.dropTransport')]()`.
 * Not API: for the repository's own tests (test/server.mjs, web-demo/e2e).
 */
const DROP_TRANSPORT = Symbol.for('jam-client.dropTransport');

const encoder = new TextEncoder();

/**
 * Reads a 403 answer of `GET /connect`: when its body names the error
 * `origin_not_allowed` (docs/protocol.md §10: the server refuses this page's
 * origin), throws that as a JamError with that code. Any other
 * 403 returns, and counts as a server that could not be reached.
 */
async function refusedOrigin(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    return;
  }
  if (body && body.error === 'origin_not_allowed') {
    throw new JamError('origin_not_allowed', ERROR_CODES.origin_not_allowed, { status: res.status });
  }
}

/**
 * A connection to a jam server, over WebTransport or WebSocket, with one API.
 * Its properties, methods and events are described in jam-client.d.ts and the
 * package README.
 */
export class JamClient {
  constructor(options = {}) {
    this.options = { ...DEFAULTS, ...options };
    if (!['auto', 'webtransport', 'websocket'].includes(this.options.transport)) {
      throw new TypeError(`transport must be 'auto', 'webtransport' or 'websocket', not ${this.options.transport}`);
    }
    /** 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' */
    this.state = 'idle';
    /** The transport in use: 'webtransport', 'websocket', or null. */
    this.transport = null;
    /** `{ roomCode, userId, hostId, participants }` while in a room, else null. */
    this.room = null;
    /** What `/connect` answered last. */
    this.connectInfo = null;
    /** Round trip of the last `clock:ping` answered, in ms (null until one came back). */
    this.rttMs = null;
    /** The estimate of the server's clock, from this client's `clock:ping`s. */
    this.clock = new ClockEstimator();
    /** Counters, cumulative over reconnects. */
    this.stats = {
      datagramsSent: 0,
      streamSent: 0,
      websocketSent: 0,
      datagramsReceived: 0,
      streamReceived: 0,
      websocketReceived: 0,
      broadcastsSent: 0,
      broadcastsReceived: 0,
      /** Broadcasts that would have been datagrams but were too large for one. */
      datagramTooLarge: 0,
      connects: 0,
      reconnects: 0,
      /** Seats taken back with `session:resume`. */
      resumes: 0,
      /** Fresh joins after the seat could not be resumed. */
      rejoins: 0,
      /** Reliable room messages dropped because their `seq` was seen already. */
      duplicatesDropped: 0,
      /** Heartbeat pings sent (not counted in `streamSent` / `websocketSent`). */
      heartbeatsSent: 0,
      /** Links dropped because the heartbeat got no answer. */
      heartbeatTimeouts: 0,
      /** Clock pings other than heartbeats (the burst, and the datagram pings over WebTransport). */
      clockPingsSent: 0,
      /** ... of which went as WebTransport datagrams. */
      clockDatagramsSent: 0,
      /** Pongs that fed the clock estimate (heartbeats' included). */
      clockSamples: 0,
    };
    this._listeners = new Map();
    this._conn = null; // the live transport object
    this._features = []; // `features` of the last `/connect`
    this._movedTo = null; // the `/connect` answer of `session:moved`, for the next connect
    this._nextId = 1;
    this._pending = new Map(); // id -> { resolve, reject, timer, event }
    /**
     * The seat the client holds, or means to take back:
     * `{ roomCode, userId, name, instrument, resumeToken, lastSeq }`.
     */
    this._seat = null;
    this._seatedConn = null; // the connection the seat is on, once the server said so
    this._replayUntil = 0; // messages up to this `seq` are replays of a resume
    this._store = new SeatStore(this.options.storage, this.options.storageKey, () => this._seat);
    this._signIn = new SignIn(this.options.getToken, {
      enabled: () => this.hasFeature('auth'),
      seated: () => this._conn !== null && this._seatedConn === this._conn,
      request: (event, data) => this.request(event, data),
      now: () => this.serverNow() ?? localNow(),
      emit: (name, data) => this._emit(name, data),
      describe: (err) => this._describe(err),
    });
    this._heartbeat = null;
    this._clockTimer = null;
    this._clockPings = new Map(); // id -> local send time, for pings of this connection
    this._clockConn = null; // the connection the clock samples are from
    this._roughOffsetMs = null; // server minus local by the last seat answer's `serverTime`
    this._tempo = new TempoTimeline();
    this._resumeTempo = null; // the tempo of a resume answer whose replay is under way
    this._tempoTimer = null;
    this._saidTempo = null; // the tempo in effect the last `tempo` event told of
    this._closedByUser = false;
    this._reconnecting = false;
    this._connecting = null;
    this._wake = null;
  }

  // --- events ---------------------------------------------------------------

  /** Adds a listener; returns a function that removes it. */
  on(name, fn) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(fn);
    return () => this.off(name, fn);
  }

  /** Removes a listener. */
  off(name, fn) {
    const set = this._listeners.get(name);
    if (set) set.delete(fn);
  }

  /** Adds a listener that runs once. */
  once(name, fn) {
    const off = this.on(name, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  _emit(name, ...args) {
    const set = this._listeners.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // A faulty listener must not break the client.
        setTimeout(() => { throw err; });
      }
    }
  }

  /** The text of an error for the client's own events, by the `describeError` option. */
  _describe(err) {
    const describe = this.options.describeError;
    return typeof describe === 'function' ? describe(err) : describeError(err);
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', { state, transport: this.transport });
  }

  // --- connecting ---------------------------------------------------------

  /**
   * Fetches `/connect` and opens a transport: WebTransport first (unless
   * forced otherwise), WebSocket when WebTransport is missing, blocked or slow.
   * Resolves to the transport chosen ('webtransport' or 'websocket').
   */
  async connect() {
    if (this._conn && !this._reconnecting) return this.transport;
    if (this._reconnecting) {
      this.reconnectNow();
      return new Promise((resolve) => this.once('reconnected', () => resolve(this.transport)));
    }
    if (this._connecting) return this._connecting;
    this._closedByUser = false;
    this._setState('connecting');
    this._connecting = this._open().then(
      (kind) => {
        this._connecting = null;
        this._setState('connected');
        return kind;
      },
      (err) => {
        this._connecting = null;
        this._setState('disconnected');
        throw err;
      },
    );
    return this._connecting;
  }

  /** Whether the server said it has this feature (`features` of `GET /connect`). */
  hasFeature(name) {
    return this._features.includes(name);
  }

  /**
   * Fetches `/connect` and opens the first transport that works. With a room
   * code it asks `/connect?room=CODE`, which names the node that holds the room
   * when the server runs on several; `given` is such an answer already in hand
   * (from `room_elsewhere` or `session:moved`), used instead of asking.
   */
  async _open({ roomCode = null, given = null } = {}) {
    const base = this.options.baseUrl || (globalThis.location && globalThis.location.href);
    if (!base) throw new JamError('connect_failed', 'no baseUrl: outside a page, pass the server\'s address as the `baseUrl` option');
    const url = new URL('/connect', base);
    if (roomCode) url.searchParams.set('room', roomCode);
    const fetchFn = this.options.fetch || globalThis.fetch;
    let info = given;
    if (!info) try {
      const res = await withTimeout(fetchFn(url, { cache: 'no-store' }), this.options.fetchTimeoutMs, 'GET /connect');
      if (res.status === 403) await refusedOrigin(res);
      if (!res.ok) throw new Error(`GET /connect answered ${res.status}`);
      info = await res.json();
    } catch (err) {
      if (err instanceof JamError && err.code === 'origin_not_allowed') throw err;
      throw new JamError('connect_failed', `could not reach ${url.origin}: ${err.message}`, { cause: err });
    }
    return this._openFrom(info, url);
  }

  /** Opens the first transport that works of a `/connect` answer. */
  async _openFrom(info, url) {
    // A server of another protocol version would misread what this client sends.
    const protocol = info && typeof info === 'object' ? info.protocol : undefined;
    if (protocol !== PROTOCOL_VERSION) {
      throw new JamError(
        'protocol_mismatch',
        `${url.origin} speaks protocol ${JSON.stringify(protocol)}; this client (jam-client ${VERSION}) speaks protocol ${PROTOCOL_VERSION}`,
        { serverProtocol: protocol },
      );
    }
    this.connectInfo = info;
    this._features = Array.isArray(info.features) ? info.features.filter((f) => typeof f === 'string') : [];

    const order = this.options.transport === 'auto' ? ['webtransport', 'websocket'] : [this.options.transport];
    let lastError = null;
    for (const kind of order) {
      let conn = null;
      // Until `conn` is set (and made current) these ignore what they hear.
      const handlers = {
        onMessage: (text, channel) => this._handleText(conn, text, channel),
        onClose: (ev) => this._handleClose(conn, ev),
      };
      try {
        if (kind === 'webtransport') {
          if (!info.webtransport) throw new JamError('connect_failed', 'the server offers no WebTransport');
          conn = await openWebTransport(info.webtransport, {
            WebTransport: this.options.WebTransport || globalThis.WebTransport,
            timeoutMs: this.options.webTransportTimeoutMs,
            fallbackMaxDatagramSize: this.options.fallbackMaxDatagramSize,
            ...handlers,
          });
        } else {
          if (!info.websocket || !info.websocket.url) throw new JamError('connect_failed', 'the server offers no WebSocket');
          conn = await openWebSocket(info.websocket.url, {
            WebSocket: this.options.WebSocket || globalThis.WebSocket,
            timeoutMs: this.options.webSocketTimeoutMs,
            ...handlers,
          });
        }
        // It may have died between opening and here, before anyone listened.
        if (conn.isClosed) throw new JamError('connect_failed', `${kind} closed as soon as it opened`);
      } catch (err) {
        if (this._closedByUser) throw new JamError('disconnected', 'closed while connecting');
        lastError = err;
        this._emit('transport-failed', { transport: kind, error: err });
        continue;
      }
      // `close()` came while this transport was opening: it must not stay open.
      if (this._closedByUser) {
        conn.close('closed by client');
        throw new JamError('disconnected', 'closed while connecting');
      }
      this._conn = conn;
      this.transport = kind;
      this.stats.connects++;
      this._startHeartbeat(conn);
      this._startClock(conn);
      return kind;
    }
    throw lastError || new JamError('connect_failed', 'no transport could open');
  }

  /**
   * Closes the connection for good (no reconnect), as a page does when it goes
   * away. It sends no `session:leave`: the server holds the seat for its resume
   * window, and the stored seat lets a reload of the page take it back
   * (`restore()`). `leave()` is how a person leaves.
   */
  close(reason = 'closed by client') {
    this._halt(reason);
    this._emit('disconnected', { reason });
  }

  /** Everything `close()` does but say so: the client stops for good, keeping the seat stored. */
  _halt(reason) {
    // Stops a reconnect under way too: it checks this after every wait.
    this._closedByUser = true;
    this._saveSeat();
    this._signIn.pause();
    if (this._wake) this._wake();
    this._stopHeartbeat();
    this._stopClock();
    const conn = this._conn;
    this._conn = null;
    this._seatedConn = null;
    if (conn) conn.close(reason);
    this._failPending('disconnected', reason);
    this._setRoom(null);
    this.transport = null;
    this._setState('disconnected');
  }

  /**
   * Test hook, not API (keyed by `Symbol.for('jam-client.dropTransport')`):
   * drops the transport underneath the client as a network fault would,
   * without telling the client's own logic, which then reconnects.
   */
  [DROP_TRANSPORT]() {
    if (this._conn) this._conn.close('debug: transport dropped');
  }

  // --- requests -----------------------------------------------------------

  /**
   * Creates a room; resolves to `{ roomCode, userId, hostId, participants, ... }`.
   * On a server that asks for sign-in, with a token from `getToken`.
   */
  async create({ name, instrument } = {}) {
    const data = { name, instrument: instrument ?? '' };
    const token = await this._tokenFor(data, 'creating a room');
    const answer = await this.request('session:create', data);
    if (token !== null) this._signIn.held(token);
    return answer;
  }

  /**
   * Adds `token` to a create or join when the server asks for sign-in and the
   * app gave `getToken`; returns it (null when none is sent).
   */
  async _tokenFor(data, what) {
    // Not connected: the request fails as `not_connected` without asking the app.
    if (!this._conn || !this._signIn.active) return null;
    data.token = await this._signIn.token(what);
    return data.token;
  }

  /**
   * Joins a room by code; resolves to `{ roomCode, userId, hostId, participants, ... }`.
   * When the room lives on another node of the server (`room_elsewhere`), the
   * client moves there and asks again, once.
   */
  async join({ roomCode, name, instrument } = {}) {
    const data = { roomCode, name, instrument: instrument ?? '' };
    const token = await this._tokenFor(data, 'joining a room');
    let answer;
    try {
      answer = await this.request('session:join', data);
    } catch (err) {
      if (err.code !== 'room_elsewhere' || !err.connect) throw err;
      await this._moveTo(err.connect);
      answer = await this.request('session:join', data);
    }
    if (token !== null) this._signIn.held(token);
    return answer;
  }

  /** Replaces the connection with one to the node a `/connect` answer names. */
  async _moveTo(info) {
    const old = this._conn;
    this._conn = null;
    this._seatedConn = null;
    if (old) old.close('moving to the room\'s node');
    this._stopHeartbeat();
    this._stopClock();
    await this._open({ given: info });
  }

  /**
   * Leaves the current room for good: sends `session:leave` (the others see the
   * seat go at once) and forgets the seat and its stored resume token, so
   * neither a reconnect nor a reload takes it back. Resolves to `{ roomCode }`.
   */
  async leave() {
    const room = this.room;
    const seat = this._seat;
    const seated = this._conn && this._seatedConn === this._conn;
    this._dropSeat();
    const roomCode = room ? room.roomCode : seat ? seat.roomCode : null;
    if (!roomCode) return { roomCode: null };
    if (!seated) {
      this._setRoom(null);
      return { roomCode };
    }
    try {
      return await this.request('session:leave', { roomCode });
    } finally {
      this._setRoom(null);
    }
  }

  /**
   * Sends `event:broadcast` to everyone else in the room. Over WebTransport it
   * goes as a datagram when the encoded envelope fits the session's datagram
   * limit, else on the control stream; `{ reliable: true }` picks the stream on
   * purpose, and `{ ephemeral: true }` asks the server never to number, keep or
   * replay it (notes: a player back after a blip hears no burst of stale ones). Returns the path taken: 'datagram', 'stream', 'websocket', or null
   * when it was not sent: not connected, not in a room, or the seat not yet
   * taken back after a reconnect (the event is dropped, as a real-time event
   * should be, and not counted as sent).
   */
  broadcast(eventName, payload, { reliable = false, ephemeral = false } = {}) {
    const conn = this._conn;
    if (!conn || !this.room || this._seatedConn !== conn) return null;
    const data = { roomCode: this.room.roomCode, eventName, payload: payload === undefined ? null : payload };
    // 1.2: an ephemeral event is relayed but never numbered, kept or replayed.
    if (ephemeral) data.ephemeral = true;
    const text = JSON.stringify({ event: 'event:broadcast', data });
    this.stats.broadcastsSent++;
    if (conn.hasDatagrams && !reliable) {
      const bytes = encoder.encode(text);
      if (bytes.length <= conn.maxDatagramSize) {
        conn.sendDatagram(bytes);
        this.stats.datagramsSent++;
        return 'datagram';
      }
      this.stats.datagramTooLarge++;
    }
    return this._sendText(conn, text);
  }

  /**
   * Sends any client message and resolves with the direct answer's `data`
   * (rejects with a JamError carrying `.code` when the answer is `error`).
   */
  request(event, data) {
    const conn = this._conn;
    if (!conn) return Promise.reject(new JamError('not_connected', ERROR_CODES.not_connected));
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new JamError('timeout', `no answer to ${event} within ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this._pending.set(id, { resolve, reject, timer, event });
      this._sendText(conn, JSON.stringify({ event, data, id }));
    });
  }

  _sendText(conn, text) {
    conn.sendControl(text);
    if (conn.kind === 'websocket') {
      this.stats.websocketSent++;
      return 'websocket';
    }
    this.stats.streamSent++;
    return 'stream';
  }

  _failPending(code, message) {
    for (const [id, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new JamError(code, message || ERROR_CODES[code]));
      this._pending.delete(id);
    }
  }

  // --- heartbeat ------------------------------------------------------------

  /**
   * Pings the server on the reliable path and drops the link when nothing comes
   * back: a link that goes dark without closing (Wi-Fi out of range, a dead
   * NAT entry) would otherwise look alive for a minute or more. The link is
   * dead only when a ping has waited a whole interval and nothing at all came
   * for `heartbeatTimeoutMs`, so a tab whose timers the browser slows down does
   * not mistake its own sleep for a dead link.
   */
  _startHeartbeat(conn) {
    this._stopHeartbeat();
    const every = this.options.heartbeatIntervalMs;
    const limit = this.options.heartbeatTimeoutMs;
    if (!(every > 0) || !this.hasFeature('clock')) return;
    const hb = { conn, lastHeardAt: now(), waitingSince: null, lastPingAt: -Infinity, timer: null };
    hb.timer = setInterval(() => {
      if (this._heartbeat !== hb || conn !== this._conn) {
        clearInterval(hb.timer);
        return;
      }
      const t = now();
      if (hb.waitingSince !== null && t - hb.waitingSince >= every && t - hb.lastHeardAt >= limit) {
        this.stats.heartbeatTimeouts++;
        this._stopHeartbeat();
        conn.close(`no answer from the server for ${Math.round(t - hb.lastHeardAt)} ms`);
        return;
      }
      if (t - hb.lastPingAt >= every) {
        hb.lastPingAt = t;
        if (hb.waitingSince === null) hb.waitingSince = t;
        this._sendClockPing(conn, { heartbeat: true });
      }
    }, Math.max(20, Math.min(250, every / 4)));
    this._heartbeat = hb;
  }

  _stopHeartbeat() {
    if (!this._heartbeat) return;
    clearInterval(this._heartbeat.timer);
    this._heartbeat = null;
  }

  // --- the room clock ---------------------------------------------------------

  /**
   * Sends one `clock:ping` whose pong feeds `clock`: as a WebTransport
   * datagram when `datagram` is set, else on the reliable path (as the
   * heartbeat's are). `t0` is the local clock, `localNow()`.
   */
  _sendClockPing(conn, { datagram = false, heartbeat = false } = {}) {
    const id = this._nextId++;
    const t0 = localNow();
    this._clockPings.set(id, t0);
    // The pong of a lost datagram never comes: forget the oldest.
    if (this._clockPings.size > 64) this._clockPings.delete(this._clockPings.keys().next().value);
    const text = JSON.stringify({ event: 'clock:ping', data: { t0 }, id });
    if (heartbeat) this.stats.heartbeatsSent++;
    else this.stats.clockPingsSent++;
    if (datagram && conn.hasDatagrams) {
      this.stats.clockDatagramsSent++;
      conn.sendDatagram(encoder.encode(text));
    } else {
      conn.sendControl(text);
    }
  }

  /**
   * Samples the server's clock on a new connection: `clockBurst` pings at
   * once, then one every `clockIntervalMs`; over WebTransport as datagrams.
   * Over WebSocket the heartbeat's pings are the samples after the burst.
   * The estimate of the previous connection stands until the first pong.
   */
  _startClock(conn) {
    this._stopClock();
    this._clockPings.clear();
    if (!this.hasFeature('clock')) return;
    const { clockBurst, clockBurstSpacingMs, clockIntervalMs } = this.options;
    const datagram = conn.hasDatagrams;
    let burst = Math.max(0, Math.floor(clockBurst) || 0);
    const tick = () => {
      this._clockTimer = null;
      if (conn !== this._conn) return;
      if (burst > 0) {
        burst--;
        this._sendClockPing(conn, { datagram });
      } else if (!(clockIntervalMs > 0)) {
        return;
      } else if (datagram || !this._heartbeat) {
        this._sendClockPing(conn, { datagram });
      }
      this._clockTimer = setTimeout(tick, burst > 0 ? clockBurstSpacingMs : clockIntervalMs);
    };
    tick();
  }

  _stopClock() {
    clearTimeout(this._clockTimer);
    this._clockTimer = null;
  }

  /** A pong of one of our own pings: a clock sample. Returns the `clock` event's data, or null. */
  _clockSample(conn, env, data, t1) {
    const t0 = this._clockPings.get(env.id);
    // Someone else's ping (`request('clock:ping', ...)`): its t0 is not our clock.
    if (t0 === undefined) return null;
    this._clockPings.delete(env.id);
    this.rttMs = Math.max(0, t1 - t0);
    if (typeof data.serverTime !== 'number' || !Number.isFinite(data.serverTime)) return null;
    if (this._clockConn !== conn) {
      // A new connection may take another path: its samples start afresh.
      this.clock.reset();
      this._clockConn = conn;
    }
    const sample = this.clock.add(t0, data.serverTime, t1);
    this.stats.clockSamples++;
    const { offsetMs, rttMs, errorMs } = this.clock;
    return { offsetMs, rttMs, errorMs, sample };
  }

  /**
   * The server's clock now, in ms: by `clock`, or before its first sample
   * roughly by the `serverTime` of the last seat answer (off by that answer's
   * one-way delay); null when neither is known.
   */
  serverNow() {
    const t = this.clock.serverNow();
    if (t !== null) return t;
    return this._roughOffsetMs === null ? null : localNow() + this._roughOffsetMs;
  }

  // --- latency in presence -----------------------------------------------------

  /**
   * The expected one-way delay from participant `userId` to this client, in
   * ms: (their round trip + mine) / 2 from the server's measurements
   * (`room.participants[].rttMs`, docs/protocol.md §8; mine is this client's
   * own best clock round trip until the server has one). Null outside a room
   * or while theirs is unknown. `gradeLatency(ms)` says how it feels.
   */
  delayMs(userId) {
    return expectedDelayMs(this.room, userId, this.clock.rttMs);
  }

  // --- the shared tempo --------------------------------------------------------

  /** The room's tempo in effect now (a copy), or null outside a room. */
  get tempo() {
    if (!this.room) return null;
    const t = this.serverNow();
    const tempo = t === null ? this._tempo.latest : this._tempo.at(t);
    return tempo ? { ...tempo } : null;
  }

  /** An announced tempo change that has not taken effect yet (a copy), else null. */
  get pendingTempo() {
    const t = this.serverNow();
    if (!this.room || t === null) return null;
    const tempo = this._tempo.pendingAfter(t);
    return tempo ? { ...tempo } : null;
  }

  /** The room's beat (fractional) at server time `serverTime` (default: now), or null. */
  beatAt(serverTime = this.serverNow()) {
    if (!this.room || typeof serverTime !== 'number') return null;
    return this._tempo.beatAt(serverTime);
  }

  /** The server time of the room's first whole beat after `after` (default: now), or null. */
  nextBeatTime(after = this.serverNow()) {
    if (!this.room || typeof after !== 'number') return null;
    return this._tempo.nextBeatTime(after);
  }

  /** The server time of the room's first bar line after `after` (default: now), or null. */
  nextBarTime(after = this.serverNow()) {
    if (!this.room || typeof after !== 'number') return null;
    return this._tempo.nextBarTime(after);
  }

  /**
   * Where server time `serverTime` (default: now) falls in its bar:
   * `{ bar, beatInBar, beat, beatsPerBar, barTime, tempo }` (`BarPosition` in
   * jam-client.d.ts), or null.
   */
  barAt(serverTime = this.serverNow()) {
    if (!this.room || typeof serverTime !== 'number') return null;
    const at = this._tempo.barAt(serverTime);
    return at ? { ...at, tempo: { ...at.tempo } } : null;
  }

  /**
   * Sets the room's tempo (`tempo:set`, docs/protocol.md §9): `bpm` 20 to
   * 300, `beatsPerBar` 1 to 16 (omitted or null: unchanged). Resolves with the
   * new tempo once `tempo:changed` came back; it takes effect at its
   * `originTime`, the first bar line at least 250 ms after the server got it.
   */
  async setTempo(bpm, beatsPerBar) {
    const room = this.room;
    if (!room) throw new JamError('not_in_session', ERROR_CODES.not_in_session);
    const data = { roomCode: room.roomCode, bpm };
    if (beatsPerBar !== undefined && beatsPerBar !== null) data.beatsPerBar = beatsPerBar;
    const answer = await this.request('tempo:set', data);
    return parseTempo(answer && answer.tempo) || (answer && answer.tempo) || null;
  }

  /** What the `tempo` event carries. */
  _tempoState() {
    return { tempo: this.tempo, pending: this.pendingTempo };
  }

  /** Emits `tempo`; `onlyIfChanged`: only when the tempo in effect is another one than last said. */
  _emitTempo(onlyIfChanged = false) {
    const t = this.serverNow();
    const current = t === null ? this._tempo.latest : this._tempo.at(t);
    if (onlyIfChanged && current === this._saidTempo) return;
    this._saidTempo = current;
    this._emit('tempo', this._tempoState());
  }

  /** Says `tempo` again when a pending change takes effect. */
  _scheduleTempo() {
    clearTimeout(this._tempoTimer);
    this._tempoTimer = null;
    const t = this.serverNow();
    if (!this.room || t === null) return;
    const pending = this._tempo.pendingAfter(t);
    if (!pending) return;
    this._tempoTimer = setTimeout(() => {
      this._tempoTimer = null;
      this._emitTempo(true);
      this._scheduleTempo();
    }, Math.max(0, pending.originTime - t) + 1);
  }

  /** Forgets the room's tempo (out of the room). */
  _clearTempo() {
    this._tempo.clear();
    this._resumeTempo = null;
    this._saidTempo = null;
    clearTimeout(this._tempoTimer);
    this._tempoTimer = null;
  }

  // --- incoming -----------------------------------------------------------

  _handleText(conn, text, channel) {
    if (!conn || conn !== this._conn) return;
    // Read the clock first: a pong's arrival time is a clock sample.
    const receivedAt = localNow();
    let env;
    try {
      env = JSON.parse(text);
    } catch {
      return; // not JSON (e.g. a MessagePack datagram this client never asked for)
    }
    if (!env || typeof env.event !== 'string') return;
    const data = env.data && typeof env.data === 'object' ? env.data : {};

    // Anything on the reliable path proves the link is alive.
    const hb = this._heartbeat;
    if (hb && hb.conn === conn && channel !== 'datagram') {
      hb.lastHeardAt = now();
      hb.waitingSince = null;
    }
    // Events the client derives, said after the raw event: [name, data] pairs.
    const derived = [];
    if (env.event === 'clock:pong') {
      const sample = this._clockSample(conn, env, data, receivedAt);
      if (sample) derived.push(['clock', sample]);
    } else if (channel === 'datagram') this.stats.datagramsReceived++;
    else if (channel === 'stream') this.stats.streamReceived++;
    else this.stats.websocketReceived++;

    // The room sequence: a message seen already (e.g. sent again around a resume) is dropped.
    if (Number.isInteger(env.seq) && this._seat) {
      if (this._seat.lastSeq !== null && env.seq <= this._seat.lastSeq) {
        this.stats.duplicatesDropped++;
        return;
      }
      this._seat.lastSeq = env.seq;
      if (env.seq <= this._replayUntil) env.replayed = true;
      this._store.saveSoon();
    }

    // Keep `room` current before anyone hears about the change.
    const reduced = reduceRoom(this.room, env.event, data);
    let tempoChanged = false;
    if (isSeatAnswer(env.event, data)) {
      if (typeof data.serverTime === 'number' && Number.isFinite(data.serverTime)) {
        this._roughOffsetMs = data.serverTime - receivedAt;
      }
      this._takeSeat(conn, env.event, data, reduced.room);
      tempoChanged = !this._tempo.isEmpty;
      if (env.event === 'session:resumed') this._signIn.seatBack();
    } else if (env.event === 'session:left') {
      this._dropSeat();
    } else if (env.event === 'session:moved' && data.connect && typeof data.connect === 'object') {
      // The room went to another node (its node is stopping): the close that follows
      // is a move, and the seat is resumed there with the token held.
      this._movedTo = data.connect;
      this._emit('moving', { roomCode: data.roomCode, node: data.connect.node ?? null });
    }
    this.room = reduced.room;
    derived.push(...reduced.events);
    if (env.event === 'tempo:changed') {
      const tempo = parseTempo(data.tempo);
      if (this.room && tempo) {
        this._tempo.apply(tempo);
        // A replay after a resume brings changes the answer's tempo already
        // includes: that tempo stays the newest.
        if (env.replayed && this._resumeTempo) this._tempo.apply(this._resumeTempo);
        tempoChanged = true;
      }
    } else if (env.event === 'event:broadcast') {
      this.stats.broadcastsReceived++;
      // The one-way delay from the sender, by the round trips known now.
      data.delayMs = this.delayMs(data.senderId);
    }

    if (env.id !== undefined && ANSWER_EVENTS.has(env.event) && this._pending.has(env.id)) {
      const p = this._pending.get(env.id);
      this._pending.delete(env.id);
      clearTimeout(p.timer);
      if (env.event === 'error') {
        const extra = { id: env.id };
        if (data.connect && typeof data.connect === 'object') extra.connect = data.connect;
        p.reject(new JamError(data.code || 'error', data.message || data.code, extra));
      }
      else p.resolve(data);
    }

    this._emit(env.event, data, env, channel);
    this._emit('message', env, channel);
    if (reduced.changed) this._emit('room', this.room);
    for (const [name, payload] of derived) this._emit(name, payload);
    if (tempoChanged && this.room) {
      this._emitTempo();
      this._scheduleTempo();
    }
    if (env.event === 'error' && data.code === 'token_expired') this._endSignedOut(conn, 'sign-in expired');
  }

  /**
   * The server seated this connection (created, joined or resumed): the room
   * snapshot, the fresh resume token, and where the room's sequence stands.
   * Runs as the answer arrives, before any message after it is handled: the
   * replay of a resume can follow in the same read. `room` is the room the
   * answer describes (from `reduceRoom`).
   */
  _takeSeat(conn, event, data, room) {
    const me = room.participants.find((p) => p.id === data.userId);
    const prev = this._seat;
    const seq = Number.isInteger(data.seq) ? data.seq : null;
    let lastSeq = seq;
    this._replayUntil = 0;
    if (event === 'session:resumed' && data.replayed === true && prev && prev.lastSeq !== null && seq !== null) {
      // The replay brings us from where we were to the answer's `seq`.
      lastSeq = prev.lastSeq;
      this._replayUntil = seq;
    }
    this._seat = {
      roomCode: data.roomCode,
      userId: data.userId,
      name: me ? me.name : prev ? prev.name : undefined,
      instrument: me ? me.instrument : prev ? prev.instrument : '',
      resumeToken: typeof data.resumeToken === 'string' ? data.resumeToken : null,
      lastSeq,
    };
    this._seatedConn = conn;
    // The room's tempo: a fresh seat starts its timeline from the answer's; a
    // resumed one adds it to what it knew (a change may still be pending).
    const tempo = parseTempo(data.tempo);
    this._resumeTempo = null;
    if (!tempo) this._clearTempo();
    else if (event !== 'session:resumed') this._tempo.reset(tempo);
    else {
      this._tempo.apply(tempo);
      if (this._replayUntil > 0) this._resumeTempo = tempo;
    }
    this._saveSeat();
  }

  /** Forgets the seat, in memory and in storage. */
  _dropSeat() {
    this._signIn.stop();
    this._seat = null;
    this._seatedConn = null;
    this._replayUntil = 0;
    this._clearTempo();
    this._store.remove();
  }

  _setRoom(room) {
    if (room === null) this._clearTempo();
    if (room === null && this.room === null) return;
    this.room = room;
    this._emit('room', room);
  }

  // --- the stored seat --------------------------------------------------------

  /** The seat a reload can take back: `{ roomCode, name, instrument }` (no token), else null. */
  get savedSeat() {
    const seat = this._seat || this._loadSeat();
    return seat ? { roomCode: seat.roomCode, name: seat.name, instrument: seat.instrument } : null;
  }

  _loadSeat() {
    return this._store.load();
  }

  /** Stores the seat held now (a client without one leaves the storage alone). */
  _saveSeat() {
    this._store.save();
  }

  /**
   * Takes back the seat an earlier page in this tab held (a reload): connects
   * when needed, resumes the seat, and joins the room afresh if the server
   * answers `resume_failed`. The outcome arrives as events, as for a
   * reconnect: `reconnected` with the room, or `session-ended`. Returns whether
   * there was a seat to take back.
   */
  restore() {
    const seat = this._seat || this._loadSeat();
    if (!seat) return false;
    this._seat = seat;
    this._closedByUser = false;
    if (this._reconnecting) {
      this.reconnectNow();
      return true;
    }
    if (this._conn && this._seatedConn === this._conn) return true;
    this._reconnectLoop('taking back the saved seat', { restoring: true });
    return true;
  }

  // --- reconnecting ---------------------------------------------------------

  /** The room the client is taking back after a lost connection, else null. */
  get rejoinTarget() {
    if (!this._seat || (this._conn && this._seatedConn === this._conn)) return null;
    return { roomCode: this._seat.roomCode, name: this._seat.name, instrument: this._seat.instrument };
  }

  _handleClose(conn, { reason, takenOver = false, tokenExpired = false }) {
    if (!conn || conn !== this._conn) return;
    if (tokenExpired) {
      this._endSignedOut(conn, reason);
      return;
    }
    this._stopHeartbeat();
    this._stopClock();
    this._conn = null;
    this._seatedConn = null;
    this.transport = null;
    this._failPending('disconnected', reason);
    if (this._closedByUser) return;
    if (takenOver && this._seat) {
      // Another tab or window resumed our seat (a duplicated tab shares the
      // stored token): fighting back would only throw it out in turn.
      const { roomCode } = this._seat;
      this._dropSeat();
      this._setRoom(null);
      this._setState('disconnected');
      this._emit('session-ended', { roomCode, code: 'resumed_elsewhere', message: this._describe('resumed_elsewhere') });
      this._emit('disconnected', { reason });
      return;
    }
    if (!this.options.reconnect) {
      this._saveSeat();
      this._signIn.pause();
      this._setRoom(null);
      this._setState('disconnected');
      this._emit('disconnected', { reason });
      return;
    }
    // The server holds the seat for its resume window: `room` stays as it was
    // until the seat is back (or gone for good).
    // A loss during a reconnect attempt is handled by the loop already running.
    if (!this._reconnecting) this._reconnectLoop(reason);
  }

  /**
   * The server ended the seat because its sign-in token ran out without a
   * refresh (`token_expired`, then the close 4003 or WebTransport 7): the
   * seat is gone, with nothing to resume, and a reconnect would only learn
   * that again. The client stops and says so in `session-ended`; joining
   * again (with a fresh token) is the app's call.
   */
  _endSignedOut(conn, reason) {
    if (conn !== this._conn) return;
    const seat = this._seat;
    const roomCode = seat ? seat.roomCode : this.room ? this.room.roomCode : null;
    this._dropSeat();
    this._halt(reason);
    if (roomCode) this._emit('session-ended', { roomCode, code: 'token_expired', message: this._describe('token_expired') });
    this._emit('disconnected', { reason });
  }

  /** A reconnect met a server of another protocol version: the seat ends, and the client stops. */
  _endAfterMismatch(err) {
    const seat = this._seat;
    this._dropSeat();
    this._setRoom(null);
    this._setState('disconnected');
    if (seat) this._emit('session-ended', { roomCode: seat.roomCode, code: err.code, message: this._describe(err) });
    this._emit('disconnected', { reason: err.message });
  }

  /** Backoff delay for attempt `n` (0-based): exponential, capped, with jitter. */
  _backoff(n) {
    const { reconnectBaseMs, reconnectMaxMs } = this.options;
    const ceiling = Math.min(reconnectMaxMs, reconnectBaseMs * 2 ** n);
    // "Equal jitter": at least half the ceiling, so retries spread without bunching at zero.
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  /** Waits `ms`, or less when `reconnectNow()` or `close()` wakes it. */
  _sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this._wake === done) this._wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this._wake = done;
    });
  }

  /**
   * Reconnects until a transport opens and the seat is back (or gone for
   * good). `restoring`: a page taking up a stored seat, whose first attempt
   * goes at once.
   */
  async _reconnectLoop(reason, { restoring = false } = {}) {
    this._reconnecting = true;
    this._setState(restoring ? 'connecting' : 'reconnecting');
    try {
      for (let attempt = 0; ; ) {
        if (attempt >= this.options.reconnectMaxAttempts) {
          this._saveSeat();
          this._signIn.pause();
          this._setRoom(null);
          this._setState('disconnected');
          this._emit('disconnected', { reason: `gave up after ${attempt} attempts: ${reason}` });
          return;
        }
        // A page taking up its stored seat, or a room moving to another node, tries at once.
        const atOnce = attempt === 0 && (restoring || this._movedTo !== null);
        const delayMs = atOnce ? 0 : this._backoff(restoring ? attempt - 1 : attempt);
        if (attempt > 0) this._setState('reconnecting');
        attempt++;
        this._emit('reconnecting', { attempt, delayMs, reason, restoring });
        await this._sleep(delayMs);
        if (this._closedByUser) return;
        if (!this._conn) {
          try {
            const given = this._movedTo;
            this._movedTo = null;
            await this._open({ roomCode: this._seat ? this._seat.roomCode : null, given });
          } catch (err) {
            reason = err.message;
            // The server came back speaking another protocol: no attempt will do.
            if (err.code === 'protocol_mismatch') {
              this._endAfterMismatch(err);
              return;
            }
            continue;
          }
        }
        if (this._closedByUser) {
          if (this._conn) this._conn.close('closed by client');
          return;
        }
        this.stats.reconnects++;
        const outcome = await this._regainSeat();
        if (this._closedByUser) return;
        if (outcome === 'lost' || !this._conn) {
          reason = 'connection lost while taking the seat back';
          continue;
        }
        this._setState('connected');
        this._emit('reconnected', { transport: this.transport, room: this.room });
        return;
      }
    } finally {
      this._reconnecting = false;
    }
  }

  /**
   * Takes the seat back on the new connection: `session:resume` with the last
   * `seq` seen, or, when the server refuses the seat (`resume_failed`) or cannot
   * resume at all (protocol 1.0), a fresh join under the same name. Returns
   * 'ok', 'ended' or 'lost' (the connection went while asking).
   */
  async _regainSeat() {
    const seat = this._seat;
    if (!seat) return 'ok';
    if (seat.resumeToken && this.hasFeature('resume')) {
      const resume = () => this.request('session:resume', {
        roomCode: seat.roomCode,
        resumeToken: seat.resumeToken,
        lastSeq: seat.lastSeq,
      });
      try {
        try {
          await resume();
        } catch (err) {
          // The room is on another node of the server: go there, once.
          if (err.code !== 'room_elsewhere' || !err.connect) throw err;
          await this._moveTo(err.connect);
          await resume();
        }
        this.stats.resumes++;
        return 'ok';
      } catch (err) {
        // A node that could not be reached is a lost link too: the next attempt asks
        // `/connect?room=` afresh.
        // So is a server that cannot reach its room directory for now (`unavailable`).
        if (LINK_ERRORS.has(err.code) || err.code === 'connect_failed' || err.code === 'unavailable' || !this._conn) {
          return this._lost('resume got no answer');
        }
        if (this._seat !== seat) return 'ok'; // left or closed meanwhile
        if (err.code !== 'resume_failed') return this._endSeat(seat, err);
        this._emit('resume-failed', { roomCode: seat.roomCode, code: err.code, message: this._describe(err) });
      }
    }
    return this._joinAfresh(seat);
  }

  /** Joins the seat's room as a new participant with the seat's name and instrument. */
  async _joinAfresh(seat) {
    // Only a server that cannot hold seats frees a dead connection's name late.
    const retries = this.hasFeature('resume') ? 0 : this.options.rejoinNameTakenRetries;
    for (let tries = 0; ; tries++) {
      try {
        await this.join({ roomCode: seat.roomCode, name: seat.name, instrument: seat.instrument });
        this.stats.rejoins++;
        return 'ok';
      } catch (err) {
        if (LINK_ERRORS.has(err.code) || !this._conn) return this._lost('rejoin got no answer');
        if (err.code === 'name_taken' && tries < retries) {
          const delayMs = this._backoff(tries + 1);
          this._emit('rejoin-retry', { attempt: tries + 1, delayMs, code: err.code });
          await this._sleep(delayMs);
          if (this._closedByUser) return 'ended';
          if (!this._conn) return 'lost';
          continue;
        }
        return this._endSeat(seat, err);
      }
    }
  }

  _lost(reason) {
    if (this._conn) this._conn.close(reason);
    return 'lost';
  }

  /** The seat is gone for good: forget it and say so. */
  _endSeat(seat, err) {
    this._dropSeat();
    this._setRoom(null);
    this._emit('session-ended', { roomCode: seat.roomCode, code: err.code, message: this._describe(err) });
    return 'ended';
  }

  /** Skips the current backoff wait and tries to reconnect now. */
  reconnectNow() {
    if (this._wake) this._wake();
  }
}
