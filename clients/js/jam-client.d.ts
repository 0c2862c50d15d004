// jam-client.d.ts: the types of jam-client.js (hand-written; the library is
// plain ES modules, the entry re-exporting src/, with no build step). With the
// package README it is where the API is described, once. Everything public is here: the options,
// the client's properties and methods, its counters, the data of every event
// (a typed event map, so `client.on('session:user-joined', ({ user }) => ...)`
// is checked), the errors and the clock and tempo helpers. The drop-transport
// test hook is deliberately left out: it is not API.

/** The protocol version this client speaks (`protocol` in `GET /connect`): 1. */
export declare const PROTOCOL_VERSION: 1;

/** The protocol features this client uses when `GET /connect` lists them: 1.1's, and sign-in (`auth`). */
export declare const PROTOCOL_FEATURES: readonly ['resume', 'clock', 'latency', 'tempo', 'origins', 'auth'];

/** This package's version; its major and minor are the protocol's (1.2). */
export declare const VERSION: string;

// ---------------------------------------------------------------------------
// Plain data

/** The transports a client can use. */
export type Transport = 'webtransport' | 'websocket';

/** Where a client stands with its server. */
export type ClientState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

/** Where a message arrived: the WebTransport control stream, a datagram, or the WebSocket. */
export type Channel = 'stream' | 'datagram' | 'websocket';

/** The path a broadcast took. */
export type BroadcastPath = 'datagram' | 'stream' | 'websocket';

/** Why a seat is away (`session:user-away`'s `reason`). */
export type AwayReason = 'silent' | 'disconnected';

/** How `broadcast` sends an event. */
export interface BroadcastOptions {
  /** The reliable path even where a datagram would do (chat, other state, note-offs). */
  reliable?: boolean;
  /** 1.2: never numbered, kept or replayed by the server; for notes, not for chat or state. */
  ephemeral?: boolean;
}

/** One person in a room. */
export interface Participant {
  id: string;
  name: string;
  /** Free text; `''` when none was given. */
  instrument: string;
  /**
   * `'away'` while their connection is down and the server holds their seat,
   * or while their connection is open but nothing has come from it for the
   * server's silence limit (3 s by default).
   */
  status: 'active' | 'away';
  /**
   * Why they are away: `'silent'` (connection open, no signal) or
   * `'disconnected'`; null while active, or when the room snapshot that showed
   * them away did not say why.
   */
  awayReason: AwayReason | null;
  /** The server's measurement of their round trip, whole ms; null until measured. */
  rttMs: number | null;
}

/** The room the client is in (`client.room`). */
export interface Room {
  roomCode: string;
  /** This client's own id in the room. */
  userId: string;
  hostId: string;
  /** In join order, this client included. */
  participants: Participant[];
}

/** The room's tempo (docs/protocol.md §9). */
export interface Tempo {
  bpm: number;
  beatsPerBar: number;
  /** Server time (ms) from which this tempo holds; a bar line. */
  originTime: number;
  /** The room's beat number at `originTime`. */
  originBeat: number;
  /** Who set it; null for the room's default. */
  setBy: string | null;
}

/** Where a server time falls in its bar. */
export interface BarPosition {
  /** Bar lines since the tempo's origin (0 from it). */
  bar: number;
  /** Fractional beat within the bar (0 on the bar line). */
  beatInBar: number;
  /** The room's beat number (fractional). */
  beat: number;
  beatsPerBar: number;
  /** Server time of that bar line. */
  barTime: number;
  tempo: Tempo;
}

/** What `session:created` and `session:joined` answer. */
export interface SeatAnswer {
  roomCode: string;
  userId: string;
  hostId: string;
  participants: Participant[];
  /** 1.1: the token that takes this seat back after a lost connection. */
  resumeToken?: string;
  /** 1.1: the room's message sequence now. */
  seq?: number;
  /** 1.1: the server's clock when it answered, ms. */
  serverTime?: number;
  /** 1.1: the room's tempo. */
  tempo?: Tempo;
}

/** What `session:resumed` answers. */
export interface ResumedAnswer extends SeatAnswer {
  /** Whether the messages missed meanwhile follow (false: the snapshot is all there is). */
  replayed: boolean;
}

/** What `GET /connect` answers. */
export interface ConnectInfo {
  webtransport: {
    url: string;
    certificateHashes?: { algorithm?: string; value: string }[];
  } | null;
  websocket: { url: string } | null;
  protocol: number;
  features?: string[];
  /** The node that answered, or that holds the room asked for with `?room=` (1.2). */
  node?: string;
  /** `'required'` when the server lets only signed-in users create and join (`auth` in `features`). */
  auth?: 'required';
}

/** A message as it travels: `{ event, data, id?, seq? }`. */
export interface Envelope<D = unknown> {
  event: string;
  data: D;
  /** The request's id on a direct answer. */
  id?: number | string;
  /** The room sequence of a reliable room message (1.1). */
  seq?: number;
  /** Set by the client on a message replayed after a resume. */
  replayed?: boolean;
}

/** What an `event:broadcast` brings. */
export interface BroadcastEvent<P = unknown> {
  eventName: string;
  /** Byte for byte what the sender sent (any JSON value). */
  payload: P;
  senderId: string;
  /** 1.1: when the server received it, server time in ms. */
  serverTime?: number;
  /** 1.2: true when it was relayed as ephemeral (it is never replayed); absent otherwise. */
  ephemeral?: boolean;
  /** The expected one-way delay from the sender, ms (client-side); null when unknown. */
  delayMs: number | null;
}

/** The client's counters, cumulative over reconnects. */
export interface JamStats {
  datagramsSent: number;
  streamSent: number;
  websocketSent: number;
  datagramsReceived: number;
  streamReceived: number;
  websocketReceived: number;
  broadcastsSent: number;
  broadcastsReceived: number;
  /** Broadcasts that would have been datagrams but were too large for one. */
  datagramTooLarge: number;
  connects: number;
  reconnects: number;
  /** Seats taken back with `session:resume`. */
  resumes: number;
  /** Fresh joins after the seat could not be resumed. */
  rejoins: number;
  /** Reliable room messages dropped because their `seq` was seen already. */
  duplicatesDropped: number;
  /** Heartbeat pings sent. */
  heartbeatsSent: number;
  /** Links dropped because the heartbeat got no answer. */
  heartbeatTimeouts: number;
  /** Clock pings other than heartbeats. */
  clockPingsSent: number;
  /** ... of which went as WebTransport datagrams. */
  clockDatagramsSent: number;
  /** Pongs that fed the clock estimate. */
  clockSamples: number;
}

// ---------------------------------------------------------------------------
// Errors

/** The protocol's error codes (the `code` of an `error` answer). */
export type ServerErrorCode =
  | 'room_not_found'
  | 'name_taken'
  | 'room_full'
  | 'invalid_message'
  | 'already_in_session'
  | 'not_in_session'
  | 'payload_too_large'
  | 'rate_limited'
  | 'resume_failed'
  | 'unavailable'
  | 'room_elsewhere'
  /** Sign-in: no token, or one the server does not accept (a bad signature, expired, …). */
  | 'unauthorized'
  /** Sign-in: the token does not allow this (a room outside its `rooms`, a create with `create: false`, a refresh for another user). */
  | 'forbidden'
  /** Sign-in: the seat's token ran out without a refresh; the server ended the seat and closed the connection. */
  | 'token_expired';

/** The client's own error codes. */
export type ClientErrorCode =
  | 'timeout'
  | 'disconnected'
  | 'not_connected'
  | 'connect_failed'
  | 'protocol_mismatch'
  | 'resumed_elsewhere'
  /** `GET /connect` answered 403: the server does not accept this page's origin (`--allowed-origins`). */
  | 'origin_not_allowed';

/** Every error code a client may meet. */
export type ErrorCode = ServerErrorCode | ClientErrorCode;

/** Every error code, with a short default text. */
export declare const ERROR_CODES: Readonly<Record<ErrorCode, string>>;

/** An error with a protocol or client `code`. */
export declare class JamError extends Error {
  constructor(code: string, message?: string, extra?: Record<string, unknown>);
  readonly name: 'JamError';
  /** An `ErrorCode`, or a code from a newer server. */
  code: ErrorCode | (string & {});
  /** The request's id, on an `error` answer. */
  id?: number | string;
  /** With `protocol_mismatch`: what the server's `/connect` said. */
  serverProtocol?: unknown;
  /** With `room_elsewhere`: the `/connect` answer of the node that holds the room. */
  connect?: ConnectInfo;
}

/** Something `describeError` can word: an error, a `{ code, message }`, or a code. */
export type Describable = { code?: string; message?: string } | string | null | undefined;

/** An app's words for error codes; a code left out gets the default text of `ERROR_CODES`. */
export type ErrorWords = Partial<Readonly<Record<ErrorCode, string>>>;

/**
 * An error in words: `words[code]` when given, else the code's default text in
 * `ERROR_CODES`, else the error's message. For `invalid_message` the server's
 * message follows in brackets. Pass the same function, with your words, as the
 * `describeError` option so the client's own events carry them too.
 */
export declare function describeError(err: Describable, words?: ErrorWords): string;

// ---------------------------------------------------------------------------
// Options

/** What a `fetch` must do for the client: `GET /connect`. */
export type FetchLike = (
  url: URL,
  init: { cache: 'no-store' },
) => Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>;

/** A WebSocket constructor: the browser's, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string) => unknown;

/** A WebTransport constructor: the browser's. */
export type WebTransportConstructor = new (url: string, options?: object) => unknown;

/** A place for the seat: `sessionStorage`, or anything with these three methods. */
export interface SeatStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** `new JamClient(options)`: every option is optional. */
export interface JamClientOptions {
  /** Where `/connect` lives; defaults to the page's own origin (required outside a page). */
  baseUrl?: string | URL;
  /** Which transport: WebTransport first with WebSocket fallback (`'auto'`), or only one. Default `'auto'`. */
  transport?: 'auto' | Transport;
  /** The WebSocket constructor; defaults to the global one (Node 20: pass `WebSocket` from `ws`). */
  WebSocket?: WebSocketConstructor;
  /** The WebTransport constructor; defaults to the global one. */
  WebTransport?: WebTransportConstructor;
  /** The `fetch` that asks `/connect`; defaults to the global one. */
  fetch?: FetchLike;
  /** Replaces `describeError` for the `message` of the client's own events. */
  describeError?: (err: Describable) => string;
  /**
   * Signing in with the app's tokens: returns the JWT your backend signed for
   * this user (or a promise of it). On a server that asks for sign-in the
   * client calls it for every create and join, and again to refresh the seat's
   * token when a quarter of its lifetime is left. Default: none, no token sent.
   */
  getToken?: () => string | Promise<string>;
  /** How long WebTransport may take to open before falling back, ms. Default 3000. */
  webTransportTimeoutMs?: number;
  /** How long a WebSocket may take to open, ms. Default 5000. */
  webSocketTimeoutMs?: number;
  /** How long `/connect` may take, ms. Default 5000. */
  fetchTimeoutMs?: number;
  /** How long a request waits for its answer, ms. Default 10000. */
  requestTimeoutMs?: number;
  /** Reconnect (and resume the seat) after a lost connection. Default true. */
  reconnect?: boolean;
  /** First reconnect delay, ms; doubles per failed attempt. Default 500. */
  reconnectBaseMs?: number;
  /** Longest delay between reconnect attempts, ms. Default 5000. */
  reconnectMaxMs?: number;
  /** Give up after this many failed attempts in a row. Default Infinity. */
  reconnectMaxAttempts?: number;
  /** Protocol 1.0 servers only: retries of a rejoin answered `name_taken`. Default 10. */
  rejoinNameTakenRetries?: number;
  /** How often the heartbeat goes out, ms; 0 turns it off. Default 1000. */
  heartbeatIntervalMs?: number;
  /** The link counts as dead after this long without an answer, ms. Default 3500. */
  heartbeatTimeoutMs?: number;
  /** Where the seat is kept so a reload resumes it: sessionStorage by default; null: memory only. */
  storage?: SeatStorage | null;
  /** The key of the seat in `storage`. Default `'jam.seat'`. */
  storageKey?: string;
  /** The datagram limit to assume when the browser does not report one, bytes. Default 1000. */
  fallbackMaxDatagramSize?: number;
  /** Clock pings sent at once on each connection. Default 8. */
  clockBurst?: number;
  /** Time between the pings of that burst, ms. Default 25. */
  clockBurstSpacingMs?: number;
  /** One clock ping this often after the burst, ms; 0 turns them off. Default 1000. */
  clockIntervalMs?: number;
}

// ---------------------------------------------------------------------------
// Events

/** The clock estimate after a sample. */
export interface ClockSample {
  rttMs: number;
  offsetMs: number;
}

/** Listener arguments of each server message. */
type ServerEvent<D> = [data: D, envelope: Envelope<D>, channel: Channel];

/**
 * Every event a client emits, by name, with the arguments its listeners get.
 * Server messages (`session:*`, `tempo:changed`, `event:broadcast`,
 * `clock:pong`, `error`) come with their envelope and channel; the rest are
 * the client's own. A message of a kind not listed here reaches `message`.
 */
export interface JamEvents {
  'session:created': ServerEvent<SeatAnswer>;
  'session:joined': ServerEvent<SeatAnswer>;
  'session:resumed': ServerEvent<ResumedAnswer>;
  'session:left': ServerEvent<{ roomCode: string }>;
  'session:user-joined': ServerEvent<{ user: Participant }>;
  'session:user-left': ServerEvent<{ userId: string }>;
  'session:user-away': ServerEvent<{ userId: string; reason?: AwayReason }>;
  'session:user-back': ServerEvent<{ userId: string }>;
  'session:host-changed': ServerEvent<{ hostId: string }>;
  'session:latency': ServerEvent<{ rttMs: Record<string, number | null> }>;
  'tempo:changed': ServerEvent<{ tempo: Tempo }>;
  'event:broadcast': ServerEvent<BroadcastEvent>;
  'clock:pong': ServerEvent<{ t0: unknown; serverTime: number }>;
  'session:moved': ServerEvent<{ roomCode: string; connect: ConnectInfo }>;
  /** The seat's token was replaced (`auth:refresh`); `exp` in seconds since the Unix epoch. */
  'auth:refreshed': ServerEvent<{ exp: number }>;
  error: ServerEvent<{ code: ServerErrorCode | (string & {}); message: string; connect?: ConnectInfo }>;

  /** Every server envelope. */
  message: [envelope: Envelope, channel: Channel];
  /** `client.state` changed. */
  state: [{ state: ClientState; transport: Transport | null }];
  /** `client.room` after any change to it. */
  room: [room: Room | null];
  /** Round trips in presence changed. */
  latency: [{ rttMs: Record<string, number | null>; room: Room }];
  /** A clock sample came in. */
  clock: [{ offsetMs: number; rttMs: number; errorMs: number; sample: ClockSample }];
  /** The room's tempo, or an announced change. */
  tempo: [{ tempo: Tempo | null; pending: Tempo | null }];
  /**
   * Another participant is away: their connection dropped and the server holds
   * their seat (`'disconnected'`), or it is open but silent (`'silent'`).
   */
  'user-away': [{ userId: string; user: Participant | null; reason: AwayReason }];
  /** They took their seat back. */
  'user-back': [{ userId: string; user: Participant | null }];
  /** This client got its seat back. */
  resumed: [{ replayed: boolean; room: Room | null }];
  /** One transport could not open. */
  'transport-failed': [{ transport: Transport; error: Error }];
  /** Before each reconnect attempt. */
  reconnecting: [{ attempt: number; delayMs: number; reason: string; restoring: boolean }];
  /** The server refused the seat; the client joins the room afresh. */
  'resume-failed': [{ roomCode: string; code: string; message: string }];
  /** A rejoin got `name_taken` and will be tried again (1.0 servers). */
  'rejoin-retry': [{ attempt: number; delayMs: number; code: string }];
  /** Connected again (with the seat back, when there was one). */
  reconnected: [{ transport: Transport | null; room: Room | null }];
  /**
   * The room is moving to another node of the server (that node is stopping);
   * the client resumes the seat there by itself. A page says "moving to
   * another server…", not an error.
   */
  moving: [{ roomCode: string; node: string | null }];
  /**
   * The seat is gone for good. With code `'token_expired'` its sign-in ran out
   * without a refresh: the client has stopped (no reconnect); sign in and join again.
   */
  'session-ended': [{ roomCode: string; code: ErrorCode | (string & {}); message: string }];
  /** The seat's sign-in token was refreshed with one from `getToken`; it now expires at `exp` (seconds since the Unix epoch). */
  'token-refreshed': [{ exp: number }];
  /**
   * The seat's token could not be refreshed (`getToken` failed twice, or gave
   * a token the server refused twice, or one no newer): the seat ends when the
   * token runs out, unless a later refresh succeeds.
   */
  'token-refresh-failed': [{ code: ErrorCode | (string & {}); message: string }];
  /** The client stopped for good. */
  disconnected: [{ reason: string }];
}

/** The name of an event. */
export type JamEventName = keyof JamEvents;

/** A listener of event `K`. */
export type JamListener<K extends JamEventName> = (...args: JamEvents[K]) => void;

// ---------------------------------------------------------------------------
// The client

/** A connection to a jam server, over WebTransport or WebSocket, with one API. */
export declare class JamClient {
  constructor(options?: JamClientOptions);

  /** The options in force (defaults filled in). */
  readonly options: Readonly<JamClientOptions>;
  /** Where the client stands. */
  readonly state: ClientState;
  /** The transport in use, or null. */
  readonly transport: Transport | null;
  /** The room while in one (kept while reconnecting), else null. */
  readonly room: Room | null;
  /** What `GET /connect` answered last. */
  readonly connectInfo: ConnectInfo | null;
  /** Round trip of the last heartbeat or clock ping answered, ms. */
  readonly rttMs: number | null;
  /** The estimate of the server's clock. */
  readonly clock: ClockEstimator;
  /** Counters, cumulative over reconnects. */
  readonly stats: Readonly<JamStats>;
  /** The room's tempo in effect now, or null outside a room. */
  readonly tempo: Tempo | null;
  /** An announced tempo change not yet in effect, else null. */
  readonly pendingTempo: Tempo | null;
  /** The seat a reload could take back (no token), else null. */
  readonly savedSeat: { roomCode: string; name: string | undefined; instrument: string } | null;
  /** The room being taken back after a lost connection, else null. */
  readonly rejoinTarget: { roomCode: string; name: string | undefined; instrument: string } | null;

  /** Adds a listener; returns a function that removes it. */
  on<K extends JamEventName>(name: K, fn: JamListener<K>): () => void;
  /** Adds a listener that runs once; returns a function that removes it. */
  once<K extends JamEventName>(name: K, fn: JamListener<K>): () => void;
  /** Removes a listener. */
  off<K extends JamEventName>(name: K, fn: JamListener<K>): void;

  /**
   * Fetches `/connect` and opens a transport. Resolves to the transport chosen;
   * rejects with `connect_failed` or `protocol_mismatch`.
   */
  connect(): Promise<Transport>;
  /** Closes for good (no reconnect, no `session:leave`: a reload can resume the seat). */
  close(reason?: string): void;
  /** Skips the current backoff wait. */
  reconnectNow(): void;
  /** Takes back the seat an earlier page held; returns whether there was one. */
  restore(): boolean;
  /** Whether `/connect` listed this feature. */
  hasFeature(name: string): boolean;

  /** Creates a room; this client is its host. With sign-in on, the token comes from `getToken`. */
  create(args: { name: string; instrument?: string | null }): Promise<SeatAnswer>;
  /** Joins a room by code (case and look-alikes forgiven). With sign-in on, the token comes from `getToken`. */
  join(args: { roomCode: string; name: string; instrument?: string | null }): Promise<SeatAnswer>;
  /** Leaves the room for good; resolves to the room left (null: none). */
  leave(): Promise<{ roomCode: string | null }>;
  /**
   * Sends an event to everyone else in the room: a datagram over WebTransport
   * when it fits (unless `reliable`), else the reliable path. `ephemeral` (1.2):
   * never numbered, kept or replayed by the server; send notes so, chat not.
   * Returns the path, or null when not sent (not connected or not in a room).
   */
  broadcast(eventName: string, payload?: unknown, options?: BroadcastOptions): BroadcastPath | null;
  /** Sends any client message; resolves with the direct answer's data. */
  request<T = Record<string, unknown>>(event: string, data: object): Promise<T>;
  /** Sets the room's tempo (20 to 300 bpm, 1 to 16 beats a bar). */
  setTempo(bpm: number, beatsPerBar?: number | null): Promise<Tempo | null>;

  /** The server's clock now, ms, or null when unknown. */
  serverNow(): number | null;
  /** The room's beat (fractional) at a server time (default: now). */
  beatAt(serverTime?: number | null): number | null;
  /** The server time of the first whole beat after `after` (default: now). */
  nextBeatTime(after?: number | null): number | null;
  /** The server time of the first bar line after `after` (default: now). */
  nextBarTime(after?: number | null): number | null;
  /** Where a server time (default: now) falls in its bar. */
  barAt(serverTime?: number | null): BarPosition | null;
  /** The expected one-way delay from a participant to this client, ms. */
  delayMs(userId: string): number | null;
}

// ---------------------------------------------------------------------------
// Helpers

/** 64 hex digits (colons and spaces allowed) as bytes. */
export declare function hexToBytes(hex: string): Uint8Array;

/** How a one-way delay feels: 'good' (up to 25 ms), 'playable' (50), 'hard', or null. */
export declare function gradeLatency(ms: number | null | undefined): 'good' | 'playable' | 'hard' | null;

/** The local clock: Unix time in ms, monotonic. */
export declare function localNow(): number;

/** The estimate of the server's clock from ping exchanges (docs/protocol.md §7). */
export declare class ClockEstimator {
  constructor();
  /** Adds a sample: sent at local `t0`, answered with `serverTime`, received at `t1`. */
  add(t0: number, serverTime: number, t1: number): ClockSample;
  /** Forgets every sample. */
  reset(): void;
  /** Server minus local, ms; null before the first sample. */
  readonly offsetMs: number | null;
  /** The best round trip kept, ms. */
  readonly rttMs: number | null;
  /** How far off `offsetMs` may be, ms. */
  readonly errorMs: number | null;
  readonly sampleCount: number;
  readonly samples: ClockSample[];
  localNow(): number;
  serverNow(): number | null;
  toServerTime(local: number): number | null;
  toLocalTime(server: number): number | null;
}

/** The room's tempo over time. */
export declare class TempoTimeline {
  constructor();
  clear(): void;
  reset(tempo: Tempo | null): void;
  apply(tempo: Tempo): void;
  readonly isEmpty: boolean;
  readonly latest: Tempo | null;
  readonly tempos: Tempo[];
  at(t: number): Tempo | null;
  pendingAfter(t: number): Tempo | null;
  beatAt(t: number): number | null;
  nextBeatTime(after: number): number | null;
  nextBarTime(after: number): number | null;
  barAt(t: number): BarPosition | null;
}

/** The shared tempo's arithmetic (docs/protocol.md §9). */
export declare const tempoMath: Readonly<{
  DEFAULT_BPM: 120;
  DEFAULT_BEATS_PER_BAR: 4;
  MIN_BPM: 20;
  MAX_BPM: 300;
  MAX_BEATS_PER_BAR: 16;
  CHANGE_LEAD_MS: 250;
  defaultAt(created: number): Tempo;
  beatMs(tempo: Tempo): number;
  barMs(tempo: Tempo): number;
  beatAt(tempo: Tempo, t: number): number;
  timeOfBeat(tempo: Tempo, beat: number): number;
  nextBarLine(tempo: Tempo, t: number): { time: number; beat: number };
  changed(tempo: Tempo, bpm: number, beatsPerBar: number | null | undefined, received: number, setBy: string): Tempo;
}>;
