// errors.js: the errors a client reports, and their default words.
//
// Owns: JamError, ERROR_CODES (every protocol and client error code with a
// short default text), describeError (an error as words: the app's when it
// passes them, else the default), and the timer that turns a slow step into a
// `timeout` JamError. Does not own: when an error happens (the transports and
// client.js decide) or the words of any particular page.

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
 * protocol's (`error` answers; the sign-in ones, `unauthorized`, `forbidden`
 * and `token_expired`, in sentences a person can act on) and the client's own (`timeout`,
 * `disconnected`, `not_connected`, `connect_failed`, `protocol_mismatch`,
 * `origin_not_allowed`, and `resumed_elsewhere` in `session-ended`). An app
 * shows its own words for them (the jam-server page passes its own from
 * web-demo/messages.js to `describeError`).
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
  unavailable: 'the server cannot open rooms right now',
  room_elsewhere: 'the room is on another server',
  unauthorized: 'This server lets only signed-in players in, and your sign-in was missing or not accepted. Sign in again.',
  forbidden: 'Your sign-in does not allow this: that room is not open to you, or you may not create rooms.',
  token_expired: 'Your sign-in expired; sign in again to rejoin.',
  timeout: 'no answer in time',
  disconnected: 'the connection was lost',
  not_connected: 'not connected',
  connect_failed: 'could not reach the server',
  protocol_mismatch: 'the server speaks another protocol version',
  resumed_elsewhere: 'the seat was resumed on another connection',
  origin_not_allowed:
    "This server does not accept connections from this page's address (origin). Ask whoever runs the server to add it to --allowed-origins.",
});

/**
 * An error (or an error code) in words: `words[code]` when the app gives words
 * for that code, else the code's default text in `ERROR_CODES`, else the
 * error's own message. For `invalid_message` the server's message follows in
 * brackets: only it says what was wrong.
 */
export function describeError(err, words) {
  const code = typeof err === 'string' ? err : err && err.code;
  const detail = typeof err === 'object' && err && err.message;
  const own = (table) => code && table && Object.prototype.hasOwnProperty.call(table, code) && typeof table[code] === 'string';
  const text = own(words) ? words[code] : own(ERROR_CODES) ? ERROR_CODES[code] : null;
  if (text === null) return detail || String(err);
  return code === 'invalid_message' && detail ? `${text} (${detail})` : text;
}

/** Races `promise` against a timer; the timer rejects with code `timeout`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new JamError('timeout', `${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
