// jam-client.js: the browser client for jam-server (protocol version 1).
//
// Owns: reaching the server (`GET /connect`, then WebTransport with the
// development certificate's hash, or WebSocket), the envelope and its `id`
// bookkeeping, the room the client is in, and reconnecting after a lost
// connection. Does not own: anything visual or audible; pages build on the
// events this module emits.
//
// One framework-free ES module, no dependencies, no build step:
//
//   import { JamClient } from './jam-client.js';
//   const client = new JamClient();
//   await client.connect();                    // 'webtransport' or 'websocket'
//   const room = await client.create({ name: 'Ana', instrument: 'piano' });
//   client.on('event:broadcast', (data) => { ... });
//   client.broadcast('note', { type: 'on', note: 60, velocity: 100 });

/** The protocol version this client speaks (`protocol` in `GET /connect`). */
export const PROTOCOL_VERSION = 1;

/** Answers that settle a request carrying an `id`. */
const ANSWER_EVENTS = new Set(['session:created', 'session:joined', 'session:left', 'error']);

const DEFAULTS = {
  /** Where `/connect` lives; defaults to the page's own origin. */
  baseUrl: undefined,
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
  /** Longest delay between reconnect attempts. */
  reconnectMaxMs: 10000,
  /** Give up after this many failed attempts in a row (Infinity: never). */
  reconnectMaxAttempts: Infinity,
  /**
   * How often a rejoin answered `name_taken` is tried again. With the default
   * backoff, 10 retries span about a minute: the server's default dead-peer
   * timeout, after which it has surely freed the old seat.
   */
  rejoinNameTakenRetries: 10,
  /** A WebTransport datagram limit to assume when the browser does not report one. */
  fallbackMaxDatagramSize: 1000,
};

/** An error with a protocol `code` (or a client code such as `timeout`). */
export class JamError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'JamError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/** Plain-language text for every error code a page may meet. */
export const ERROR_TEXT = {
  room_not_found: 'There is no session with that code. Check the code, or the session may have ended.',
  name_taken: 'Someone in that session already uses that name. Please pick another one.',
  room_full: 'That session is full.',
  invalid_message: 'The server did not accept that request.',
  already_in_session: 'You are already in a session. Leave it first.',
  not_in_session: 'You are not in a session any more.',
  payload_too_large: 'That message was too large for the server.',
  rate_limited: 'You are sending notes faster than the server allows; some were dropped.',
  timeout: 'The server did not answer in time.',
  disconnected: 'The connection to the server was lost.',
  not_connected: 'Not connected to the server.',
  connect_failed: 'Could not reach the server.',
};

/** Turns an error (or an error code) into a sentence for people. */
export function describeError(err) {
  const code = typeof err === 'string' ? err : err && err.code;
  const detail = typeof err === 'object' && err && err.message;
  // For a malformed request only the server's own words say what was wrong.
  if (code === 'invalid_message' && detail) return `${ERROR_TEXT.invalid_message} (${detail})`;
  if (code && ERROR_TEXT[code]) return ERROR_TEXT[code];
  return detail || String(err);
}

/** Turns 64 hex digits into the bytes `serverCertificateHashes` wants. */
export function hexToBytes(hex) {
  const clean = String(hex).trim().replace(/^0x/i, '').replace(/[:\s]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-f]/i.test(clean)) {
    throw new JamError('connect_failed', `certificate hash is not hex: ${hex}`);
  }
  const bytes = new Uint8Array(clean.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** Races `promise` against a timer; the timer rejects with code `timeout`. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new JamError('timeout', `${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Transports. Each one turns a channel into "envelope in, envelope out" and
// reports its own end exactly once through `onClose`. They know nothing about
// rooms or reconnecting.

/**
 * Opens a WebTransport session and its control stream.
 * Resolves to a transport object, or rejects if that takes over `timeoutMs`.
 */
async function openWebTransport(info, { timeoutMs, fallbackMaxDatagramSize, onMessage, onClose }) {
  if (typeof globalThis.WebTransport !== 'function') {
    throw new JamError('connect_failed', 'this browser has no WebTransport');
  }
  const options = {};
  const hashes = (info.certificateHashes || []).map((h) => ({
    algorithm: h.algorithm || 'sha-256',
    value: hexToBytes(h.value),
  }));
  if (hashes.length) options.serverCertificateHashes = hashes;

  const wt = new globalThis.WebTransport(info.url, options);
  // A rejected `closed` with nobody listening would be reported as unhandled.
  wt.closed.catch(() => {});
  let stream;
  try {
    stream = await withTimeout(
      wt.ready.then(() => wt.createBidirectionalStream()),
      timeoutMs,
      'opening WebTransport',
    );
  } catch (err) {
    try { wt.close(); } catch { /* never opened */ }
    throw err instanceof JamError ? err : new JamError('connect_failed', `WebTransport: ${err && err.message}`);
  }

  const writer = stream.writable.getWriter();
  const dg = wt.datagrams;
  const dgWriter = dg.createWritable ? dg.createWritable().getWriter() : dg.writable.getWriter();
  let closed = false;

  const transport = {
    kind: 'webtransport',
    hasDatagrams: true,
    get isClosed() {
      return closed;
    },
    get maxDatagramSize() {
      return Number.isFinite(dg.maxDatagramSize) && dg.maxDatagramSize > 0 ? dg.maxDatagramSize : fallbackMaxDatagramSize;
    },
    sendControl(text) {
      writer.write(encoder.encode(text + '\n')).catch(() => finish('control stream write failed'));
    },
    sendDatagram(bytes) {
      // A failed datagram is a lost note, never the end of the session.
      dgWriter.write(bytes).catch(() => {});
    },
    close(reason = 'closed by client') {
      try { wt.close({ closeCode: 0, reason }); } catch { /* already closed */ }
      finish(reason);
    },
  };

  function finish(reason) {
    if (closed) return;
    closed = true;
    try { wt.close(); } catch { /* already closed */ }
    onClose({ reason });
  }

  wt.closed.then(
    (info2) => finish((info2 && info2.reason) || 'session closed'),
    (err) => finish((err && err.message) || 'session failed'),
  );

  // Control stream: newline-delimited JSON.
  (async () => {
    const reader = stream.readable.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).replace(/\r$/, '');
          buffer = buffer.slice(nl + 1);
          if (line.trim()) onMessage(line, 'stream');
        }
      }
      finish('control stream ended');
    } catch (err) {
      finish((err && err.message) || 'control stream failed');
    }
  })();

  // Datagrams: one JSON envelope each.
  (async () => {
    const reader = dg.readable.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        onMessage(decoder.decode(value), 'datagram');
      }
    } catch {
      // The session's end is reported through `closed`.
    }
  })();

  return transport;
}

/** Opens a WebSocket. Resolves to a transport object once it is open. */
function openWebSocket(url, { timeoutMs, onMessage, onClose }) {
  return new Promise((resolve, reject) => {
    if (typeof globalThis.WebSocket !== 'function') {
      reject(new JamError('connect_failed', 'this browser has no WebSocket'));
      return;
    }
    const ws = new globalThis.WebSocket(url);
    let opened = false;
    let closed = false;
    const timer = setTimeout(() => {
      try { ws.close(); } catch { /* ignore */ }
      reject(new JamError('timeout', `opening WebSocket took longer than ${timeoutMs} ms`));
    }, timeoutMs);

    const transport = {
      kind: 'websocket',
      hasDatagrams: false,
      get isClosed() {
        return closed;
      },
      maxDatagramSize: 0,
      sendControl(text) {
        if (ws.readyState === 1) ws.send(text);
      },
      sendDatagram() {
        throw new Error('WebSocket has no datagrams');
      },
      close(reason = 'closed by client') {
        try { ws.close(1000, reason.slice(0, 100)); } catch { /* ignore */ }
        finish(reason);
      },
    };

    function finish(reason) {
      if (closed) return;
      closed = true;
      if (opened) onClose({ reason });
    }

    ws.onopen = () => {
      clearTimeout(timer);
      opened = true;
      resolve(transport);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') onMessage(ev.data, 'websocket');
    };
    ws.onerror = () => {
      if (!opened) {
        clearTimeout(timer);
        reject(new JamError('connect_failed', `WebSocket to ${url} failed`));
      }
    };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      if (!opened) reject(new JamError('connect_failed', `WebSocket to ${url} closed (${ev.code})`));
      finish(`socket closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`);
    };
  });
}

// ---------------------------------------------------------------------------

/**
 * A connection to a jam server, over WebTransport or WebSocket, with one API.
 *
 * Events (subscribe with `on(name, fn)`, which returns an unsubscribe function):
 * - every server message by its `event` name: `session:created`, `session:joined`,
 *   `session:left`, `session:user-joined`, `session:user-left`,
 *   `session:host-changed`, `event:broadcast`, `error`; the listener gets
 *   `(data, envelope, channel)`; `channel` is 'stream', 'datagram' or 'websocket'.
 * - `message`: every server envelope, `(envelope, channel)`.
 * - `state`: `{ state, transport }` whenever `client.state` changes
 *   ('idle', 'connecting', 'connected', 'reconnecting', 'disconnected').
 * - `room`: `client.room` after any change to it (null when not in a room).
 * - `transport-failed`: `{ transport, error }` when one transport could not open.
 * - `reconnecting`: `{ attempt, delayMs, reason }` before each reconnect attempt.
 * - `rejoin-retry`: `{ attempt, delayMs, code }` when the rejoin got `name_taken` (the
 *   server has not yet noticed the old connection died) and will be tried again.
 * - `reconnected`: `{ transport, room }` once connected again (and rejoined, when in a room).
 * - `session-ended`: `{ roomCode, code, message }` when the rejoin failed for good
 *   (`room_not_found` after a server restart, `name_taken` after the retries, ...).
 * - `disconnected`: `{ reason }` when the client stops for good (close(), or out of attempts).
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
      rejoins: 0,
    };
    this._listeners = new Map();
    this._conn = null; // the live transport object
    this._nextId = 1;
    this._pending = new Map(); // id -> { resolve, reject, timer, event }
    this._rejoin = null; // { roomCode, name, instrument } while the client means to be in a room
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
    if (this._conn) return this.transport;
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

  /** Fetches `/connect` and opens the first transport that works. */
  async _open() {
    const base = this.options.baseUrl || (globalThis.location && globalThis.location.href);
    const url = new URL('/connect', base);
    let info;
    try {
      const res = await withTimeout(fetch(url, { cache: 'no-store' }), this.options.fetchTimeoutMs, 'GET /connect');
      if (!res.ok) throw new Error(`GET /connect answered ${res.status}`);
      info = await res.json();
    } catch (err) {
      throw new JamError('connect_failed', `could not reach ${url.origin}: ${err.message}`, { cause: err });
    }
    this.connectInfo = info;

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
            timeoutMs: this.options.webTransportTimeoutMs,
            fallbackMaxDatagramSize: this.options.fallbackMaxDatagramSize,
            ...handlers,
          });
        } else {
          if (!info.websocket || !info.websocket.url) throw new JamError('connect_failed', 'the server offers no WebSocket');
          conn = await openWebSocket(info.websocket.url, { timeoutMs: this.options.webSocketTimeoutMs, ...handlers });
        }
        // It may have died between opening and here, before anyone listened.
        if (conn.isClosed) throw new JamError('connect_failed', `${kind} closed as soon as it opened`);
      } catch (err) {
        lastError = err;
        this._emit('transport-failed', { transport: kind, error: err });
        continue;
      }
      this._conn = conn;
      this.transport = kind;
      this.stats.connects++;
      return kind;
    }
    throw lastError || new JamError('connect_failed', 'no transport could open');
  }

  /** Closes the connection for good (no reconnect). Leaves the room implicitly. */
  close(reason = 'closed by client') {
    this._closedByUser = true;
    this._rejoin = null;
    if (this._wake) this._wake();
    const conn = this._conn;
    this._conn = null;
    if (conn) conn.close(reason);
    this._failPending('disconnected', reason);
    this._setRoom(null);
    this.transport = null;
    this._setState('disconnected');
    this._emit('disconnected', { reason });
  }

  /**
   * Test hook: drops the transport underneath the client as a network fault
   * would, without telling the client's own logic, which then reconnects.
   */
  _debugDropTransport() {
    if (this._conn) this._conn.close('debug: transport dropped');
  }

  // --- requests -----------------------------------------------------------

  /** Creates a room; resolves to `{ roomCode, userId, hostId, participants }`. */
  async create({ name, instrument } = {}) {
    const data = await this.request('session:create', { name, instrument: instrument ?? '' });
    this._enterRoom(data, instrument);
    return data;
  }

  /** Joins a room by code; resolves to `{ roomCode, userId, hostId, participants }`. */
  async join({ roomCode, name, instrument } = {}) {
    const data = await this.request('session:join', { roomCode, name, instrument: instrument ?? '' });
    this._enterRoom(data, instrument);
    return data;
  }

  /** Leaves the current room; resolves to `{ roomCode }`. */
  async leave() {
    const room = this.room;
    this._rejoin = null;
    if (!room) return { roomCode: null };
    if (!this._conn) {
      this._setRoom(null);
      return { roomCode: room.roomCode };
    }
    try {
      return await this.request('session:leave', { roomCode: room.roomCode });
    } finally {
      this._setRoom(null);
    }
  }

  /**
   * Sends `event:broadcast` to everyone else in the room. Over WebTransport it
   * goes as a datagram when the encoded envelope fits the session's datagram
   * limit, else on the control stream; `{ reliable: true }` picks the stream on
   * purpose. Returns the path taken: 'datagram', 'stream', 'websocket', or null
   * when not connected or not in a room (the event is dropped, as a real-time
   * event should be).
   */
  broadcast(eventName, payload, { reliable = false } = {}) {
    const conn = this._conn;
    if (!conn || !this.room) return null;
    const text = JSON.stringify({
      event: 'event:broadcast',
      data: { roomCode: this.room.roomCode, eventName, payload: payload === undefined ? null : payload },
    });
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
    if (!conn) return Promise.reject(new JamError('not_connected', ERROR_TEXT.not_connected));
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
      p.reject(new JamError(code, message || ERROR_TEXT[code]));
      this._pending.delete(id);
    }
  }

  // --- incoming -----------------------------------------------------------

  _handleText(conn, text, channel) {
    if (!conn || conn !== this._conn) return;
    let env;
    try {
      env = JSON.parse(text);
    } catch {
      return; // not JSON (e.g. a MessagePack datagram this client never asked for)
    }
    if (!env || typeof env.event !== 'string') return;
    const data = env.data && typeof env.data === 'object' ? env.data : {};
    if (channel === 'datagram') this.stats.datagramsReceived++;
    else if (channel === 'stream') this.stats.streamReceived++;
    else this.stats.websocketReceived++;

    // Keep `room` current before anyone hears about the change.
    let roomChanged = false;
    const room = this.room;
    switch (env.event) {
      case 'session:user-joined':
        if (room && data.user && !room.participants.some((p) => p.id === data.user.id)) {
          room.participants = [...room.participants, data.user];
          roomChanged = true;
        }
        break;
      case 'session:user-left':
        if (room) {
          room.participants = room.participants.filter((p) => p.id !== data.userId);
          roomChanged = true;
        }
        break;
      case 'session:host-changed':
        if (room) {
          room.hostId = data.hostId;
          roomChanged = true;
        }
        break;
      case 'event:broadcast':
        this.stats.broadcastsReceived++;
        break;
      default:
        break;
    }

    if (env.id !== undefined && ANSWER_EVENTS.has(env.event) && this._pending.has(env.id)) {
      const p = this._pending.get(env.id);
      this._pending.delete(env.id);
      clearTimeout(p.timer);
      if (env.event === 'error') p.reject(new JamError(data.code || 'error', data.message || data.code, { id: env.id }));
      else p.resolve(data);
    }

    this._emit(env.event, data, env, channel);
    this._emit('message', env, channel);
    if (roomChanged) this._emit('room', this.room);
  }

  _enterRoom(data, instrument) {
    const me = (data.participants || []).find((p) => p.id === data.userId);
    this._rejoin = {
      roomCode: data.roomCode,
      name: me ? me.name : undefined,
      instrument: me ? me.instrument : instrument ?? '',
    };
    this._setRoom({
      roomCode: data.roomCode,
      userId: data.userId,
      hostId: data.hostId,
      participants: [...(data.participants || [])],
    });
  }

  _setRoom(room) {
    if (room === null && this.room === null) return;
    this.room = room;
    this._emit('room', room);
  }

  // --- reconnecting ---------------------------------------------------------

  /** The room the client is rejoining after a lost connection, else null. */
  get rejoinTarget() {
    return this.room ? null : this._rejoin;
  }

  _handleClose(conn, { reason }) {
    if (!conn || conn !== this._conn) return;
    this._conn = null;
    this.transport = null;
    this._failPending('disconnected', reason);
    if (this._closedByUser) return;
    // The server counts a dead transport as leaving: our seat is gone.
    this._setRoom(null);
    if (!this.options.reconnect) {
      this._rejoin = null;
      this._setState('disconnected');
      this._emit('disconnected', { reason });
      return;
    }
    // A loss during a reconnect attempt is handled by the loop already running.
    if (!this._reconnecting) this._reconnectLoop(reason);
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

  async _reconnectLoop(reason) {
    this._reconnecting = true;
    this._setState('reconnecting');
    try {
      for (let attempt = 0; ; ) {
        if (attempt >= this.options.reconnectMaxAttempts) {
          this._rejoin = null;
          this._setState('disconnected');
          this._emit('disconnected', { reason: `gave up after ${attempt} attempts: ${reason}` });
          return;
        }
        const delayMs = this._backoff(attempt++);
        this._emit('reconnecting', { attempt, delayMs, reason });
        await this._sleep(delayMs);
        if (this._closedByUser) return;
        try {
          await this._open();
        } catch (err) {
          reason = err.message;
          continue;
        }
        if (this._closedByUser) {
          if (this._conn) this._conn.close('closed by client');
          return;
        }
        this.stats.reconnects++;
        const outcome = await this._rejoinRoom();
        if (this._closedByUser) return;
        if (outcome === 'lost' || !this._conn) {
          reason = 'connection lost while rejoining';
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
   * Joins the room the client was in, as a fresh participant (the server
   * cannot resume a seat). Returns 'ok', 'ended' or 'lost'.
   */
  async _rejoinRoom() {
    const want = this._rejoin;
    if (!want) return 'ok';
    for (let tries = 0; ; tries++) {
      try {
        await this.join({ roomCode: want.roomCode, name: want.name, instrument: want.instrument });
        this.stats.rejoins++;
        return 'ok';
      } catch (err) {
        if (['disconnected', 'not_connected', 'timeout'].includes(err.code) || !this._conn) {
          if (this._conn) this._conn.close('rejoin got no answer');
          return 'lost';
        }
        // The server may not have noticed yet that our old connection died.
        if (err.code === 'name_taken' && tries < this.options.rejoinNameTakenRetries) {
          const delayMs = this._backoff(tries + 1);
          this._emit('rejoin-retry', { attempt: tries + 1, delayMs, code: err.code });
          await this._sleep(delayMs);
          if (this._closedByUser) return 'ended';
          if (!this._conn) return 'lost';
          continue;
        }
        this._rejoin = null;
        this._emit('session-ended', { roomCode: want.roomCode, code: err.code, message: describeError(err) });
        return 'ended';
      }
    }
  }

  /** Skips the current backoff wait and tries to reconnect now. */
  reconnectNow() {
    if (this._wake) this._wake();
  }
}
