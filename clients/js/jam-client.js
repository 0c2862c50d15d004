// jam-client.js: the client for jam-server, protocol version 1 with the 1.1
// additions (seats that survive the network, the room clock, latency in
// presence and the shared tempo; PROTOCOL.md sections 6 to 9). It is the npm
// package `jam-client` (clients/js/ in the jam-server repository; its README
// shows how to use it from an app, jam-client.d.ts has the types) and, the
// same file, what jam-server serves at `/jam-client.js` for its no-build page.
//
// Owns: reaching the server (`GET /connect`, checking that it speaks protocol
// version 1, then WebTransport with the development certificate's hash, or
// WebSocket), the envelope and its `id` bookkeeping, the room the client is in
// (participants with their away/active status and round trips), the seat it
// holds (resume token and last room `seq`, kept in sessionStorage so a reload
// resumes it), noticing a silently dead link (a `clock:ping` heartbeat),
// reconnecting and resuming after a lost connection, the estimate of the
// server's clock, and the room's tempo timeline. Does not own: anything
// visual or audible, or the words a page shows people (error codes come with
// a short default text, `describeError`, that an app replaces with its own
// wording); pages build on the events this module emits.
//
// One framework-free ES module, no dependencies, no build step; in the
// browser it uses the page's `fetch`, `WebSocket` and `WebTransport`, and in
// Node (20 has no global WebSocket) it takes them as options:
//
//   import { JamClient } from 'jam-client';    // or './jam-client.js'
//   const client = new JamClient();            // Node: { baseUrl, WebSocket } (from 'ws')
//   await client.connect();                    // 'webtransport' or 'websocket'
//   const room = await client.create({ name: 'Ana', instrument: 'piano' });
//   client.on('event:broadcast', ({ payload, serverTime, delayMs }) => { ... });
//   client.broadcast('note', { type: 'on', note: 60, velocity: 100 });
//   const click = client.nextBeatTime();       // server time of the next beat
//   setTimeout(tick, client.clock.toLocalTime(click) - client.clock.localNow());
//
// After a reload, `client.restore()` takes the seat the page held before
// (PROTOCOL.md section 6); after any lost connection the client reconnects and
// resumes that seat on its own, and joins afresh only when the server answers
// `resume_failed`.
//
// Times. "Server time" is the server's clock in ms (Unix time, anchored once
// when the server started; `serverTime` in its messages). "Local time" is this
// page's clock as `client.clock.localNow()` reads it: Unix time in ms too, but
// monotonic (`performance.timeOrigin + performance.now()`), so a wall-clock
// jump moves no estimate. On one machine the two agree to a fraction of a ms.
//
// Public API
// ----------
// `new JamClient(options)`: options and their defaults are in DEFAULTS below.
//
// Properties
// - `state`: 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected'.
// - `transport`: 'webtransport' | 'websocket' | null.
// - `room`: `{ roomCode, userId, hostId, participants }` while in a room, else
//   null; `participants[]` is `{ id, name, instrument, status, rttMs }` in join
//   order, `status` 'active' or 'away', `rttMs` the server's measurement of that
//   participant's round trip in whole ms (null until measured), kept current
//   from `session:latency`. The room stays set while the client reconnects.
// - `connectInfo`: what `GET /connect` answered last; `hasFeature(name)` asks it.
// - `savedSeat`, `rejoinTarget`: the seat a reload or a reconnect would take back.
// - `rttMs`: the round trip of the last `clock:ping` answered, ms (null before).
// - `clock`: the estimate of the server's clock (a `ClockEstimator`), fed by
//   every `clock:pong` of this client's own pings:
//   `offsetMs` (server minus local: the median offset of the samples whose round
//   trip is within max(1 ms, half the best) of the best, out of the last 16),
//   `rttMs` (the best round trip of those samples), `errorMs` (half of it: how far
//   off `offsetMs` can be), `sampleCount`, all null before the first sample;
//   `serverNow()` (null before the first sample), `localNow()`,
//   `toServerTime(local)`, `toLocalTime(server)`. Its samples start afresh on
//   each new connection (another path); the old estimate stands until then.
//   Pongs of pings the page sends itself (`request('clock:ping', ...)`) are
//   not samples: their `t0` is not this clock.
//   Pings: a burst of `clockBurst` at each connect, `clockBurstSpacingMs`
//   apart, then one every `clockIntervalMs`. Over WebTransport those go as
//   datagrams (the pong comes back as one: no head-of-line wait behind the
//   control stream), while the liveness heartbeat stays on the control stream,
//   because only an answer there proves the reliable path works; its pongs feed
//   the clock too. Over WebSocket the heartbeat's pings are the samples after
//   the burst (`clockIntervalMs` applies there only with the heartbeat off).
// - `tempo`: the room's tempo in effect now, `{ bpm, beatsPerBar, originTime,
//   originBeat, setBy }` (PROTOCOL.md section 9), or null outside a room. A
//   change announced by `tempo:changed` takes effect at its `originTime` (a bar
//   line of the tempo before it); until then `tempo` is the previous one, so
//   the beat never jumps. `pendingTempo`: the announced change not yet in
//   effect, else null. (A page that joins while a change is pending knows only
//   the pending tempo, and counts earlier times by it.)
// - `stats`: counters, cumulative over reconnects (see the constructor).
//
// Methods
// - `connect()`, `close()`, `reconnectNow()`, `restore()`: the connection and
//   the seat (see each method). `connect()` rejects with a `JamError` whose
//   code is `connect_failed` when no transport opens, or `protocol_mismatch`
//   when `/connect` names a protocol version other than `PROTOCOL_VERSION`
//   (the client then sends nothing to that server, and never reconnects to it).
// - `create({ name, instrument })`, `join({ roomCode, name, instrument })`,
//   `leave()`: resolve with the server's answer, reject with a `JamError`
//   whose `.code` is the protocol's error code or a client one (`timeout`,
//   `disconnected`, `not_connected`, `connect_failed`, `protocol_mismatch`).
// - `broadcast(eventName, payload, { reliable })`: returns the path taken.
// - `request(event, data)`: any message; resolves with the answer's `data`.
// - `setTempo(bpm, beatsPerBar?)`: `tempo:set` for the room; resolves with the
//   new tempo as `tempo:changed` announced it (it takes effect on a bar line
//   at least 250 ms later).
// - `serverNow()`: the server's clock now, by `clock`, or before the first
//   pong roughly by the `serverTime` of the last seat answer; null when neither.
// - `beatAt(serverTime = serverNow())`: the room's beat number then (fractional),
//   by the tempo in effect then.
// - `nextBeatTime(after = serverNow())`, `nextBarTime(after = serverNow())`:
//   the server time of the first whole beat (bar line) after `after`.
// - `barAt(serverTime = serverNow())`: `{ bar, beatInBar, beat, beatsPerBar,
//   barTime, tempo }`: `bar` is k in PROTOCOL.md's "bar lines are the beats
//   originBeat + k * beatsPerBar" of the tempo in effect (0 from its origin;
//   it starts again at each change), `beatInBar` the fractional beat within the
//   bar (0 on the bar line), `barTime` the server time of that bar line.
// - `delayMs(userId)`: the expected one-way delay from that participant to
//   this client, (rtt of theirs + rtt of mine) / 2 (PROTOCOL.md section 8),
//   or null while theirs is unknown.
// - `on(name, fn)` (returns an unsubscribe function), `once`, `off`.
// Also exported: `PROTOCOL_VERSION` (1: the `protocol` of `GET /connect` this
// client speaks), `PROTOCOL_FEATURES` (the 1.1 features it uses when the
// server lists them), `VERSION` (this package's version: its major and minor
// are the protocol's, 1.1), `JamError`, `ERROR_CODES` (every error code, with
// a short default text), `describeError(err)` (that default text; the
// `describeError` option replaces it in the client's own events),
// `hexToBytes(hex)`, `gradeLatency(ms)` ('good' up to 25 ms, 'playable' up to
// 50 ms, 'hard' above, null for null), `localNow()` (the local clock),
// `ClockEstimator`, `TempoTimeline` (the tempo over time, as `client.tempo` and
// the beat helpers use it: `apply`, `at`, `pendingAfter`, `beatAt`,
// `nextBeatTime`, `nextBarTime`, `barAt`) and
// `tempoMath` (the section 9 arithmetic as pure functions: `defaultAt`,
// `beatMs`, `barMs`, `beatAt`, `timeOfBeat`, `nextBarLine`, `changed`).
//
// Events (listeners get the arguments shown)
// - Every server message by its `event` name: `session:created`,
//   `session:joined`, `session:resumed`, `session:left`, `session:user-joined`,
//   `session:user-left`, `session:user-away`, `session:user-back`,
//   `session:host-changed`, `session:latency`, `tempo:changed`,
//   `event:broadcast`, `clock:pong`, `error`, and any other the server sends:
//   `(data, envelope, channel)`, `channel` 'stream', 'datagram' or 'websocket'.
//   A reliable room message (one with a top-level `seq`) whose `seq` is not
//   above the last one seen is a duplicate and is dropped unheard; one replayed
//   after a resume has `envelope.replayed === true` (a page may skip stale notes).
//   `event:broadcast` data is `{ eventName, payload, senderId, serverTime,
//   delayMs }`: `serverTime` is when the server received it, `delayMs` the
//   client's addition, `delayMs(senderId)` at arrival (null when unknown).
// - `message`: every server envelope, `(envelope, channel)`.
// - `state`: `{ state, transport }` whenever `client.state` changes. While it is
//   not 'connected' nothing the client sends reaches the room.
// - `room`: `client.room` after any change to it (null when not in a room),
//   round trips from `session:latency` included.
// - `latency`: `{ rttMs, room }` after `session:latency` updated
//   `room.participants[].rttMs` (`rttMs` the message's map, userId -> ms | null).
// - `clock`: `{ offsetMs, rttMs, errorMs, sample }` after each clock sample
//   (`sample` is that exchange's `{ rttMs, offsetMs }`).
// - `tempo`: `{ tempo, pending }` (`client.tempo`, `client.pendingTempo`) when
//   a seat answer brought the room's tempo, when `tempo:changed` announced a
//   change, and again when a pending change took effect.
// - `user-away` / `user-back`: `{ userId, user }` when another participant's
//   connection dropped (the server holds the seat) / they resumed it.
// - `resumed`: `{ replayed, room }` when the client got its seat back after a
//   lost connection or a reload; with `replayed` false the room snapshot is all
//   there is (nothing missed is replayed, e.g. after a server restart).
// - `transport-failed`: `{ transport, error }` when one transport could not open.
// - `reconnecting`: `{ attempt, delayMs, reason, restoring }` before each
//   reconnect attempt (`restoring` when taking up a seat saved by an earlier page).
// - `resume-failed`: `{ roomCode, code, message }` when the server refused the
//   seat (`resume_failed`); the client then joins the room afresh.
// - `rejoin-retry`: `{ attempt, delayMs, code }` (servers without `resume`
//   only) when the rejoin got `name_taken` and will be tried again.
// - `reconnected`: `{ transport, room }` once connected again (with the seat
//   back, when there was one).
// - `session-ended`: `{ roomCode, code, message }` when the seat is gone for
//   good: the resume and the fresh join both failed (`room_not_found`,
//   `name_taken`, ...) or the seat was resumed by another tab (`resumed_elsewhere`).
// - `disconnected`: `{ reason }` when the client stops for good (close(), out
//   of attempts, or its seat taken over).

/** The protocol version this client speaks (`protocol` in `GET /connect`). */
export const PROTOCOL_VERSION = 1;

/** The protocol 1.1 features this client uses when `GET /connect` lists them. */
export const PROTOCOL_FEATURES = Object.freeze(['resume', 'clock', 'latency', 'tempo', 'origins']);

/** This package's version (package.json's): major and minor are the protocol's, 1.1. */
export const VERSION = '1.1.0';

/** Answers that settle a request carrying an `id`. */
const ANSWER_EVENTS = new Set(['session:created', 'session:joined', 'session:resumed', 'session:left', 'clock:pong', 'tempo:changed', 'error']);

/** Answers that seat this client in a room. */
const SEAT_EVENTS = new Set(['session:created', 'session:joined', 'session:resumed']);

/** Errors that mean the connection, not the request, failed. */
const LINK_ERRORS = new Set(['disconnected', 'not_connected', 'timeout']);

/** WebSocket close code and WebTransport close code of a seat resumed on another connection. */
const WS_CLOSE_RESUMED_ELSEWHERE = 4000;
const WT_CLOSE_RESUMED_ELSEWHERE = 5;

/** A monotonic clock in milliseconds (wall-clock jumps must not fake a dead link). */
const now = () => (globalThis.performance ? globalThis.performance.now() : Date.now());

/**
 * The local clock the room-clock estimate is against: Unix time in ms, read
 * from the monotonic clock (`performance.timeOrigin + performance.now()`), so
 * it never jumps with the wall clock, as the server's own clock never does.
 */
export function localNow() {
  const perf = globalThis.performance;
  if (perf && Number.isFinite(perf.timeOrigin)) return perf.timeOrigin + perf.now();
  return Date.now();
}

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

/** An error with a protocol `code` (or a client code such as `timeout`). */
export class JamError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'JamError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/**
 * Every error code a client may meet, each with a short default text: the
 * protocol's (`error` answers) and the client's own (`timeout`,
 * `disconnected`, `not_connected`, `connect_failed`, `protocol_mismatch`,
 * and `resumed_elsewhere` in `session-ended`). An app shows its own words for
 * them (the jam-server page keeps its in web-demo/messages.js).
 */
export const ERROR_CODES = Object.freeze({
  room_not_found: 'no room with that code',
  name_taken: 'that name is taken in the room',
  room_full: 'the room is full',
  invalid_message: 'the server did not accept the message',
  already_in_session: 'already in a room',
  not_in_session: 'not in a room',
  payload_too_large: 'the message is too large',
  rate_limited: 'sending too fast; some messages were dropped',
  resume_failed: 'the seat could not be resumed',
  timeout: 'no answer in time',
  disconnected: 'the connection was lost',
  not_connected: 'not connected',
  connect_failed: 'could not reach the server',
  protocol_mismatch: 'the server speaks another protocol version',
  resumed_elsewhere: 'the seat was resumed on another connection',
});

/**
 * The default text for an error (or an error code): the server's own message
 * for `invalid_message` (only it says what was wrong), else the code's text
 * in `ERROR_CODES`, else the error's message. Apps replace it with their own
 * wording (see the `describeError` option).
 */
export function describeError(err) {
  const code = typeof err === 'string' ? err : err && err.code;
  const detail = typeof err === 'object' && err && err.message;
  if (code === 'invalid_message' && detail) return `${ERROR_CODES.invalid_message}: ${detail}`;
  if (code && Object.prototype.hasOwnProperty.call(ERROR_CODES, code)) return ERROR_CODES[code];
  return detail || String(err);
}

/**
 * The key of the test hook that drops the transport underneath a client as a
 * network fault would: `client[Symbol.for('jam-client.dropTransport')]()`.
 * Not API: for the repository's own tests (test/server.mjs, web-demo/e2e).
 */
const DROP_TRANSPORT = Symbol.for('jam-client.dropTransport');

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
// reports its own end exactly once through `onClose` (`takenOver` when the
// server closed it because the seat was resumed on another connection). They know nothing about
// rooms or reconnecting.

/**
 * Opens a WebTransport session and its control stream.
 * Resolves to a transport object, or rejects if that takes over `timeoutMs`.
 */
async function openWebTransport(info, { WebTransport, timeoutMs, fallbackMaxDatagramSize, onMessage, onClose }) {
  if (typeof WebTransport !== 'function') {
    throw new JamError('connect_failed', 'no WebTransport here');
  }
  const options = {};
  const hashes = (info.certificateHashes || []).map((h) => ({
    algorithm: h.algorithm || 'sha-256',
    value: hexToBytes(h.value),
  }));
  if (hashes.length) options.serverCertificateHashes = hashes;

  const wt = new WebTransport(info.url, options);
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

  function finish(reason, takenOver = false) {
    if (closed) return;
    closed = true;
    try { wt.close(); } catch { /* already closed */ }
    onClose({ reason, takenOver });
  }

  wt.closed.then(
    (info2) => finish((info2 && info2.reason) || 'session closed', info2 && info2.closeCode === WT_CLOSE_RESUMED_ELSEWHERE),
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
function openWebSocket(url, { WebSocket, timeoutMs, onMessage, onClose }) {
  return new Promise((resolve, reject) => {
    if (typeof WebSocket !== 'function') {
      reject(new JamError('connect_failed', 'no WebSocket here (in Node 20, pass the `WebSocket` option, e.g. from the `ws` package)'));
      return;
    }
    const ws = new WebSocket(url);
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

    function finish(reason, takenOver = false) {
      if (closed) return;
      closed = true;
      if (opened) onClose({ reason, takenOver });
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
      finish(`socket closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`, ev.code === WS_CLOSE_RESUMED_ELSEWHERE);
    };
  });
}

// ---------------------------------------------------------------------------
// The room clock (PROTOCOL.md section 7) and the shared tempo (section 9):
// pure arithmetic, no I/O. They mirror the Rust client's `ClockEstimator`
// (crates/jam-client/src/clock.rs) and the protocol crate's `Tempo`
// (crates/jam-protocol/src/tempo.rs) rule for rule.

/** Clock samples kept (the oldest go first). */
const CLOCK_KEEP = 16;
/** Samples whose round trip exceeds the best by more than this, or by more than half the best, do not count. */
const CLOCK_MARGIN_MS = 1;

/**
 * The offset of the server's clock from the local one (`localNow()`),
 * estimated NTP-style from `clock:ping` exchanges: of the last 16 samples,
 * those whose round trip is within max(1 ms, half the best) of the best are
 * kept, and the median of their offsets is taken. The error bound is half the
 * best round trip: the pong can have spent at most that long on either leg.
 */
export class ClockEstimator {
  constructor() {
    this._samples = [];
    this._offsetMs = null;
    this._rttMs = null;
  }

  /**
   * Adds a sample: a ping sent at local `t0`, answered with `serverTime`,
   * received at local `t1`. Returns `{ rttMs, offsetMs }` of this exchange.
   */
  add(t0, serverTime, t1) {
    const sample = { rttMs: Math.max(0, t1 - t0), offsetMs: serverTime - (t0 + t1) / 2 };
    if (this._samples.length === CLOCK_KEEP) this._samples.shift();
    this._samples.push(sample);
    this._estimate();
    return { ...sample };
  }

  _estimate() {
    let best = Infinity;
    for (const s of this._samples) best = Math.min(best, s.rttMs);
    const margin = Math.max(CLOCK_MARGIN_MS, best / 2);
    const offsets = this._samples
      .filter((s) => s.rttMs <= best + margin)
      .map((s) => s.offsetMs)
      .sort((a, b) => a - b);
    const mid = offsets.length >> 1;
    this._rttMs = best;
    this._offsetMs = offsets.length % 2 === 1 ? offsets[mid] : (offsets[mid - 1] + offsets[mid]) / 2;
  }

  /** Forgets every sample (a new connection may take another path). */
  reset() {
    this._samples = [];
    this._offsetMs = null;
    this._rttMs = null;
  }

  /** The estimated offset, server minus local, ms; null before the first sample. */
  get offsetMs() {
    return this._offsetMs;
  }

  /** The best round trip among the samples kept, ms; null before the first sample. */
  get rttMs() {
    return this._rttMs;
  }

  /** How far off `offsetMs` may be: half the best round trip, ms; null before the first sample. */
  get errorMs() {
    return this._rttMs === null ? null : this._rttMs / 2;
  }

  /** How many samples the estimate rests on (at most 16). */
  get sampleCount() {
    return this._samples.length;
  }

  /** The samples kept, oldest first: `{ rttMs, offsetMs }`. */
  get samples() {
    return this._samples.map((s) => ({ ...s }));
  }

  /** The local clock the estimate is against (see `localNow`). */
  localNow() {
    return localNow();
  }

  /** The server's clock now, by the estimate; null before the first sample. */
  serverNow() {
    return this._offsetMs === null ? null : localNow() + this._offsetMs;
  }

  /** The server time of local time `local`; null before the first sample. */
  toServerTime(local) {
    return this._offsetMs === null ? null : local + this._offsetMs;
  }

  /** The local time (as `localNow()` reads it) of server time `server`; null before the first sample. */
  toLocalTime(server) {
    return this._offsetMs === null ? null : server - this._offsetMs;
  }
}

/**
 * The shared tempo's arithmetic (PROTOCOL.md section 9) as pure functions of a
 * tempo `{ bpm, beatsPerBar, originTime, originBeat, setBy }` and server times
 * in ms; the server uses the same rules.
 */
export const tempoMath = Object.freeze({
  DEFAULT_BPM: 120,
  DEFAULT_BEATS_PER_BAR: 4,
  MIN_BPM: 20,
  MAX_BPM: 300,
  MAX_BEATS_PER_BAR: 16,
  /** A change takes effect on a bar line at least this long (ms) after the server got it. */
  CHANGE_LEAD_MS: 250,

  /** The default tempo of a room created at server time `created`. */
  defaultAt(created) {
    return { bpm: 120, beatsPerBar: 4, originTime: created, originBeat: 0, setBy: null };
  },

  /** Milliseconds per beat. */
  beatMs(tempo) {
    return 60000 / tempo.bpm;
  },

  /** Milliseconds per bar. */
  barMs(tempo) {
    return (60000 / tempo.bpm) * tempo.beatsPerBar;
  },

  /** The beat (fractional) at server time `t`. */
  beatAt(tempo, t) {
    return tempo.originBeat + (t - tempo.originTime) / (60000 / tempo.bpm);
  },

  /** The server time of beat `beat`. */
  timeOfBeat(tempo, beat) {
    return tempo.originTime + (beat - tempo.originBeat) * (60000 / tempo.bpm);
  },

  /** The first bar line at or after max(t, originTime): `{ time, beat }`. */
  nextBarLine(tempo, t) {
    const bars = Math.max(0, Math.ceil((t - tempo.originTime) / tempoMath.barMs(tempo)));
    const beat = tempo.originBeat + bars * tempo.beatsPerBar;
    return { time: tempoMath.timeOfBeat(tempo, beat), beat };
  },

  /**
   * The tempo after a `tempo:set` to `bpm` / `beatsPerBar` (null or undefined:
   * unchanged) that the server received at `received` from `setBy`: it starts
   * on the first bar line of `tempo`, at or after its origin, that lies at
   * least 250 ms after `received`.
   */
  changed(tempo, bpm, beatsPerBar, received, setBy) {
    const line = tempoMath.nextBarLine(tempo, received + tempoMath.CHANGE_LEAD_MS);
    return {
      bpm,
      beatsPerBar: beatsPerBar ?? tempo.beatsPerBar,
      originTime: line.time,
      originBeat: line.beat,
      setBy,
    };
  },
});

/** A tempo as the server sent it, checked and copied; null when it is not one. */
function parseTempo(t) {
  if (!t || typeof t !== 'object') return null;
  const { bpm, beatsPerBar, originTime, originBeat, setBy } = t;
  if (!(Number.isFinite(bpm) && bpm > 0) || !(Number.isInteger(beatsPerBar) && beatsPerBar >= 1)) return null;
  if (!Number.isFinite(originTime) || !Number.isFinite(originBeat)) return null;
  return { bpm, beatsPerBar, originTime, originBeat, setBy: typeof setBy === 'string' ? setBy : null };
}

/**
 * Slack for floating point at beat and bar lines, in beats: server times are
 * Unix ms, which a double resolves to about a quarter of a microsecond, so a
 * beat computed at a beat's own time can come out a millionth of a beat short.
 */
const BEAT_EPSILON = 1e-5;

/** Tempos kept in a timeline: the one in effect, what is pending, and a little history. */
const TIMELINE_KEEP = 8;

/**
 * The room's tempo over time: each tempo holds from its `originTime` until
 * the next one's. A change announced by `tempo:changed` is pending until its
 * origin, and the tempo before it applies until then, so beats never jump.
 * Times before the first known tempo are counted by that first tempo.
 */
export class TempoTimeline {
  constructor() {
    /** Tempos by `originTime`, ascending. */
    this._tempos = [];
  }

  /** Forgets everything. */
  clear() {
    this._tempos = [];
  }

  /** Starts over from `tempo` (a fresh seat: nothing earlier is known). */
  reset(tempo) {
    this._tempos = tempo ? [tempo] : [];
  }

  /**
   * Adds the room's newest tempo: it replaces every tempo starting at or after
   * its origin (a change that never took effect) and holds from its origin on.
   */
  apply(tempo) {
    this._tempos = this._tempos.filter((t) => t.originTime < tempo.originTime);
    this._tempos.push(tempo);
    if (this._tempos.length > TIMELINE_KEEP) this._tempos.splice(0, this._tempos.length - TIMELINE_KEEP);
  }

  /** Whether nothing is known. */
  get isEmpty() {
    return this._tempos.length === 0;
  }

  /** The newest tempo known (possibly pending), or null. */
  get latest() {
    return this._tempos.length ? this._tempos[this._tempos.length - 1] : null;
  }

  /** The tempos known, oldest first. */
  get tempos() {
    return this._tempos.map((t) => ({ ...t }));
  }

  _indexAt(t) {
    let i = 0;
    for (let j = 1; j < this._tempos.length; j++) if (this._tempos[j].originTime <= t) i = j;
    return i;
  }

  /** The tempo in effect at server time `t`, or null when none is known. */
  at(t) {
    return this._tempos.length ? this._tempos[this._indexAt(t)] : null;
  }

  /** The first tempo that takes effect after server time `t` (a pending change), or null. */
  pendingAfter(t) {
    return this._tempos.find((x) => x.originTime > t) || null;
  }

  /** The room's beat number (fractional) at server time `t`, or null. */
  beatAt(t) {
    const tempo = this.at(t);
    return tempo ? tempoMath.beatAt(tempo, t) : null;
  }

  /**
   * The server time of the first whole beat after `after` (with a few
   * microseconds' slack, so `t = nextBeatTime(t)` steps beat by beat), across
   * tempo changes. Null when no tempo is known.
   */
  nextBeatTime(after) {
    return this._next(after, 1);
  }

  /** The server time of the first bar line after `after`, across tempo changes, or null. */
  nextBarTime(after) {
    return this._next(after, 0);
  }

  /** The next beat (`everyBeat` 1) or bar line (0) after `after`. */
  _next(after, everyBeat) {
    if (!this._tempos.length) return null;
    let i = this._indexAt(after);
    const tempo = this._tempos[i];
    const step = everyBeat || tempo.beatsPerBar;
    const k = Math.floor((tempoMath.beatAt(tempo, after) - tempo.originBeat) / step + BEAT_EPSILON) + 1;
    let time = tempoMath.timeOfBeat(tempo, tempo.originBeat + k * step);
    // A later tempo that starts (after `after`) no later than that beat wins:
    // its origin is a beat and a bar line of its own.
    while (i + 1 < this._tempos.length && this._tempos[i + 1].originTime <= time + 1e-3) {
      i++;
      time = this._tempos[i].originTime;
    }
    return time;
  }

  /**
   * Where server time `t` falls in its bar: `{ bar, beatInBar, beat,
   * beatsPerBar, barTime, tempo }`, `bar` counting the bar lines
   * `originBeat + bar * beatsPerBar` of the tempo in effect; null when no tempo is known.
   */
  barAt(t) {
    const tempo = this.at(t);
    if (!tempo) return null;
    const beat = tempoMath.beatAt(tempo, t);
    const bar = Math.floor((beat - tempo.originBeat) / tempo.beatsPerBar + BEAT_EPSILON);
    const barBeat = tempo.originBeat + bar * tempo.beatsPerBar;
    return {
      bar,
      beatInBar: Math.max(0, beat - barBeat),
      beat,
      beatsPerBar: tempo.beatsPerBar,
      barTime: tempoMath.timeOfBeat(tempo, barBeat),
      tempo,
    };
  }
}

/** How a one-way delay feels to people (PROTOCOL.md section 8): 'good', 'playable', 'hard', or null. */
export function gradeLatency(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return null;
  if (ms <= 25) return 'good';
  if (ms <= 50) return 'playable';
  return 'hard';
}

// ---------------------------------------------------------------------------
// The seat: what the client needs to come back to its place in a room.

/** sessionStorage when the page has one (reading it may throw in a sandboxed frame). */
function defaultStorage() {
  try {
    return globalThis.sessionStorage || null;
  } catch {
    return null;
  }
}

/** A round trip as the server reports it: a number of ms, else null. */
function rttOrNull(ms) {
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : null;
}

/**
 * A participant as the page sees it: `status` is always 'active' or 'away',
 * `rttMs` a number or null.
 */
function normalizeParticipant(p) {
  return { ...p, status: p && p.status === 'away' ? 'away' : 'active', rttMs: rttOrNull(p && p.rttMs) };
}

/** A stored seat, or null when `value` is not one. */
function parseSeat(text) {
  let seat;
  try {
    seat = JSON.parse(text);
  } catch {
    return null;
  }
  if (!seat || typeof seat !== 'object' || typeof seat.roomCode !== 'string' || !seat.roomCode) return null;
  return {
    roomCode: seat.roomCode,
    userId: typeof seat.userId === 'string' ? seat.userId : null,
    name: typeof seat.name === 'string' ? seat.name : undefined,
    instrument: typeof seat.instrument === 'string' ? seat.instrument : '',
    resumeToken: typeof seat.resumeToken === 'string' ? seat.resumeToken : null,
    lastSeq: Number.isInteger(seat.lastSeq) && seat.lastSeq >= 0 ? seat.lastSeq : null,
  };
}

// ---------------------------------------------------------------------------

/**
 * A connection to a jam server, over WebTransport or WebSocket, with one API.
 * Its properties, methods and events are listed in this file's header comment.
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
    this._nextId = 1;
    this._pending = new Map(); // id -> { resolve, reject, timer, event }
    /**
     * The seat the client holds, or means to take back:
     * `{ roomCode, userId, name, instrument, resumeToken, lastSeq }`.
     */
    this._seat = null;
    this._seatedConn = null; // the connection the seat is on, once the server said so
    this._replayUntil = 0; // messages up to this `seq` are replays of a resume
    this._storage = this.options.storage === undefined ? defaultStorage() : this.options.storage;
    this._saveTimer = null;
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
    const describe = typeof this.options.describeError === 'function' ? this.options.describeError : describeError;
    return describe(err);
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

  /** Fetches `/connect` and opens the first transport that works. */
  async _open() {
    const base = this.options.baseUrl || (globalThis.location && globalThis.location.href);
    if (!base) throw new JamError('connect_failed', 'no baseUrl: outside a page, pass the server\'s address as the `baseUrl` option');
    const url = new URL('/connect', base);
    const fetchFn = this.options.fetch || globalThis.fetch;
    let info;
    try {
      const res = await withTimeout(fetchFn(url, { cache: 'no-store' }), this.options.fetchTimeoutMs, 'GET /connect');
      if (!res.ok) throw new Error(`GET /connect answered ${res.status}`);
      info = await res.json();
    } catch (err) {
      throw new JamError('connect_failed', `could not reach ${url.origin}: ${err.message}`, { cause: err });
    }
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
    this._closedByUser = true;
    this._saveSeat();
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
    this._emit('disconnected', { reason });
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

  /** Creates a room; resolves to `{ roomCode, userId, hostId, participants, ... }`. */
  create({ name, instrument } = {}) {
    return this.request('session:create', { name, instrument: instrument ?? '' });
  }

  /** Joins a room by code; resolves to `{ roomCode, userId, hostId, participants, ... }`. */
  join({ roomCode, name, instrument } = {}) {
    return this.request('session:join', { roomCode, name, instrument: instrument ?? '' });
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
   * purpose. Returns the path taken: 'datagram', 'stream', 'websocket', or null
   * when it was not sent: not connected, not in a room, or the seat not yet
   * taken back after a reconnect (the event is dropped, as a real-time event
   * should be, and not counted as sent).
   */
  broadcast(eventName, payload, { reliable = false } = {}) {
    const conn = this._conn;
    if (!conn || !this.room || this._seatedConn !== conn) return null;
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
   * (`room.participants[].rttMs`, PROTOCOL.md section 8; mine is this client's
   * own best clock round trip until the server has one). Null outside a room
   * or while theirs is unknown. `gradeLatency(ms)` says how it feels.
   */
  delayMs(userId) {
    const room = this.room;
    if (!room) return null;
    const them = room.participants.find((p) => p.id === userId);
    const me = room.participants.find((p) => p.id === room.userId);
    const theirs = them ? them.rttMs : null;
    const mine = me && me.rttMs !== null ? me.rttMs : this.clock.rttMs;
    if (theirs === null || mine === null) return null;
    return (theirs + mine) / 2;
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
   * `{ bar, beatInBar, beat, beatsPerBar, barTime, tempo }` (see the header), or null.
   */
  barAt(serverTime = this.serverNow()) {
    if (!this.room || typeof serverTime !== 'number') return null;
    const at = this._tempo.barAt(serverTime);
    return at ? { ...at, tempo: { ...at.tempo } } : null;
  }

  /**
   * Sets the room's tempo (`tempo:set`, PROTOCOL.md section 9): `bpm` 20 to
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
      this._saveSeatSoon();
    }

    // Keep `room` current before anyone hears about the change.
    let roomChanged = false;
    let tempoChanged = false;
    const room = this.room;
    switch (env.event) {
      case 'session:created':
      case 'session:joined':
      case 'session:resumed':
        if (typeof data.roomCode === 'string' && typeof data.userId === 'string') {
          if (typeof data.serverTime === 'number' && Number.isFinite(data.serverTime)) {
            this._roughOffsetMs = data.serverTime - receivedAt;
          }
          this._takeSeat(conn, env.event, data);
          roomChanged = true;
          tempoChanged = !this._tempo.isEmpty;
          if (env.event === 'session:resumed') derived.push(['resumed', { replayed: data.replayed === true, room: this.room }]);
        }
        break;
      case 'session:left':
        this._dropSeat();
        if (this.room) {
          this.room = null;
          roomChanged = true;
        }
        break;
      case 'session:user-joined':
        if (room && data.user && typeof data.user.id === 'string') {
          const user = normalizeParticipant(data.user);
          const i = room.participants.findIndex((p) => p.id === user.id);
          room.participants = i < 0 ? [...room.participants, user] : room.participants.map((p, j) => (j === i ? user : p));
          roomChanged = true;
        }
        break;
      case 'session:user-left':
        if (room) {
          room.participants = room.participants.filter((p) => p.id !== data.userId);
          roomChanged = true;
        }
        break;
      case 'session:user-away':
      case 'session:user-back': {
        const status = env.event === 'session:user-away' ? 'away' : 'active';
        if (room) {
          room.participants = room.participants.map((p) => (p.id === data.userId ? { ...p, status } : p));
          roomChanged = true;
        }
        const user = room && room.participants.find((p) => p.id === data.userId);
        derived.push([status === 'away' ? 'user-away' : 'user-back', { userId: data.userId, user: user || null }]);
        break;
      }
      case 'session:host-changed':
        if (room) {
          room.hostId = data.hostId;
          roomChanged = true;
        }
        break;
      case 'session:latency': {
        const rtts = data.rttMs;
        if (room && rtts && typeof rtts === 'object') {
          const has = (id) => Object.prototype.hasOwnProperty.call(rtts, id);
          // Away seats are left out of the map: they keep their last value.
          room.participants = room.participants.map((p) => (has(p.id) ? { ...p, rttMs: rttOrNull(rtts[p.id]) } : p));
          roomChanged = true;
          derived.push(['latency', { rttMs: { ...rtts }, room }]);
        }
        break;
      }
      case 'tempo:changed': {
        const tempo = parseTempo(data.tempo);
        if (room && tempo) {
          this._tempo.apply(tempo);
          // A replay after a resume brings changes the answer's tempo already
          // includes: that tempo stays the newest.
          if (env.replayed && this._resumeTempo) this._tempo.apply(this._resumeTempo);
          tempoChanged = true;
        }
        break;
      }
      case 'event:broadcast':
        this.stats.broadcastsReceived++;
        // The one-way delay from the sender, by the round trips known now.
        data.delayMs = this.delayMs(data.senderId);
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
    for (const [name, payload] of derived) this._emit(name, payload);
    if (tempoChanged && this.room) {
      this._emitTempo();
      this._scheduleTempo();
    }
  }

  /**
   * The server seated this connection (created, joined or resumed): the room
   * snapshot, the fresh resume token, and where the room's sequence stands.
   * Runs as the answer arrives, before any message after it is handled: the
   * replay of a resume can follow in the same read.
   */
  _takeSeat(conn, event, data) {
    const participants = Array.isArray(data.participants) ? data.participants.map(normalizeParticipant) : [];
    const me = participants.find((p) => p.id === data.userId);
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
    this.room = { roomCode: data.roomCode, userId: data.userId, hostId: data.hostId, participants };
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
    this._seat = null;
    this._seatedConn = null;
    this._replayUntil = 0;
    this._clearTempo();
    clearTimeout(this._saveTimer);
    this._saveTimer = null;
    if (!this._storage) return;
    try {
      this._storage.removeItem(this.options.storageKey);
    } catch {
      // storage off: nothing was kept
    }
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
    if (!this._storage) return null;
    try {
      const text = this._storage.getItem(this.options.storageKey);
      return text ? parseSeat(text) : null;
    } catch {
      return null;
    }
  }

  /** Stores the seat held now (a client without one leaves the storage alone). */
  _saveSeat() {
    clearTimeout(this._saveTimer);
    this._saveTimer = null;
    if (!this._storage || !this._seat) return;
    try {
      this._storage.setItem(this.options.storageKey, JSON.stringify(this._seat));
    } catch {
      // Storage full or off: the seat still survives reconnects, just not a reload.
    }
  }

  /** `lastSeq` moves with every reliable message; storing it once a second is plenty. */
  _saveSeatSoon() {
    if (!this._storage || this._saveTimer) return;
    this._saveTimer = setTimeout(() => this._saveSeat(), 1000);
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

  _handleClose(conn, { reason, takenOver = false }) {
    if (!conn || conn !== this._conn) return;
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
          this._setRoom(null);
          this._setState('disconnected');
          this._emit('disconnected', { reason: `gave up after ${attempt} attempts: ${reason}` });
          return;
        }
        const delayMs = restoring && attempt === 0 ? 0 : this._backoff(restoring ? attempt - 1 : attempt);
        if (attempt > 0) this._setState('reconnecting');
        attempt++;
        this._emit('reconnecting', { attempt, delayMs, reason, restoring });
        await this._sleep(delayMs);
        if (this._closedByUser) return;
        if (!this._conn) {
          try {
            await this._open();
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
      try {
        await this.request('session:resume', {
          roomCode: seat.roomCode,
          resumeToken: seat.resumeToken,
          lastSeq: seat.lastSeq,
        });
        this.stats.resumes++;
        return 'ok';
      } catch (err) {
        if (LINK_ERRORS.has(err.code) || !this._conn) return this._lost('resume got no answer');
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
