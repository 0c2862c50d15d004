// sign-in.js: signing in with the app's tokens (docs/protocol.md §13).
//
// Owns: asking the app's `getToken` for a token (a function, sync or async, that
// returns the JWT string), reading a token's `exp` and `iat` (the payload is
// base64url JSON; it is read, never verified: only the server checks tokens),
// when to refresh (when a quarter of the token's lifetime is left), and the
// refresh itself: `auth:refresh` with a fresh token, once more after an
// `unauthorized` answer, then giving up and saying so. Tokens are kept only as
// long as it takes to send them and never appear in an error. Does not own:
// sending (client.js hands in `request`), the seat, or what the end of a seat
// means (client.js).

import { JamError } from './errors.js';

/** Errors that mean the connection, not the refresh, failed: try again on the next seat. */
const LINK_ERRORS = new Set(['disconnected', 'not_connected', 'timeout']);

/** Never two refreshes closer together than this, whatever the tokens say. */
const MIN_GAP_MS = 1000;

/** The longest wait a timer takes (2^31 - 1 ms); a longer one is waited in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The bytes of base64url text as a string of UTF-8 decoded text, or null. */
function base64UrlText(part) {
  if (typeof part !== 'string' || !/^[A-Za-z0-9_-]*$/.test(part)) return null;
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4);
  try {
    const binary = atob(base64);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/**
 * The times a JWT states: `{ exp, iat }` in seconds since the Unix epoch (`iat`
 * null when absent), or null when `token` is not a JWT with a numeric `exp`.
 * Nothing is verified.
 */
export function tokenTimes(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const text = base64UrlText(parts[1]);
  if (text === null) return null;
  let payload;
  try {
    payload = JSON.parse(text);
  } catch {
    return null;
  }
  if (!payload || typeof payload !== 'object' || typeof payload.exp !== 'number' || !Number.isFinite(payload.exp)) return null;
  const iat = typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? payload.iat : null;
  return { exp: payload.exp, iat };
}

/**
 * When to refresh a token, in ms from `nowMs`: when a quarter of its lifetime
 * is left. The lifetime is `exp - iat`, or `exp` minus `receivedMs` (when the
 * client got it) without `iat`; all three on the server's clock, which decides
 * expiry. A token already past that point (or past `exp`) is due at once.
 */
export function refreshDelayMs({ exp, iat }, receivedMs, nowMs) {
  const issuedMs = iat === null || iat === undefined ? receivedMs : iat * 1000;
  const lifetimeMs = exp * 1000 - issuedMs;
  const dueMs = exp * 1000 - Math.max(0, lifetimeMs) / 4;
  return Math.max(0, dueMs - nowMs);
}

/**
 * The client's side of signing in. `getToken` is the app's option (undefined:
 * the client never sends a token). `hooks`:
 * - `enabled()`: whether the server asks for tokens (`auth` in `/connect`);
 * - `seated()`: whether the seat is held on the live connection;
 * - `request(event, data)`: sends a request, resolves with its answer's data;
 * - `now()`: the server's clock now, ms (Unix time);
 * - `emit(name, data)`: the client's events `token-refreshed` and `token-refresh-failed`;
 * - `describe(err)`: an error in the app's words.
 */
export class SignIn {
  constructor(getToken, hooks) {
    if (getToken !== undefined && getToken !== null && typeof getToken !== 'function') {
      throw new TypeError('getToken must be a function that returns the JWT (or a promise of it)');
    }
    this._getToken = getToken || null;
    this._hooks = hooks;
    /** `{ exp, iat, receivedMs }` of the token the seat holds, or null when unknown. */
    this._held = null;
    this._timer = null;
    this._refreshing = null;
    /** Stands for the seat the token is held for: a new object per seat, null without one. */
    this._seat = null;
    /** A refresh came due while the seat was not on a live connection. */
    this._due = false;
    this._lastRefreshAt = -Infinity;
  }

  /** Whether create and join carry a token: the app gave `getToken` and the server asks for one. */
  get active() {
    return this._getToken !== null && this._hooks.enabled();
  }

  /**
   * A token from the app for `what` (words for errors: "joining"). Rejects with
   * `unauthorized` when `getToken` throws or gives no token; the error names
   * what went wrong, never the token.
   */
  async token(what) {
    let token;
    try {
      token = await this._getToken();
    } catch (err) {
      throw new JamError('unauthorized', `getToken failed while ${what}: ${(err && err.message) || String(err)}`, { cause: err });
    }
    if (typeof token !== 'string' || token === '') {
      throw new JamError('unauthorized', `getToken gave no token while ${what} (it must return the JWT as a string)`);
    }
    return token;
  }

  /** A seat now holds `token` (created or joined with it): refresh it in time. */
  held(token) {
    const times = tokenTimes(token);
    this._held = times ? { ...times, receivedMs: this._hooks.now() } : null;
    this._seat = {};
    this._due = false;
    this._schedule();
  }

  /**
   * The seat is back on a new connection (a resume). Its token is the one the
   * client knows, unless this client never saw it (a reload took the seat
   * from storage): then it refreshes at once to learn, and to move, the expiry.
   */
  seatBack() {
    if (!this.active) return;
    if (this._seat === null) this._seat = {};
    if (this._due || this._held === null) {
      this._due = false;
      void this.refresh();
    } else if (this._timer === null) {
      this._schedule();
    }
  }

  /**
   * Stops the refresh timer but keeps what is known of the token: the client
   * stopped with the seat kept for a later `restore()` (whose resume picks the
   * timer up again), and a pending timer must not keep Node running.
   */
  pause() {
    clearTimeout(this._timer);
    this._timer = null;
  }

  /** Forgets the token and stops refreshing (the seat ended or was left). */
  stop() {
    clearTimeout(this._timer);
    this._timer = null;
    this._held = null;
    this._seat = null;
    this._due = false;
  }

  _schedule() {
    clearTimeout(this._timer);
    this._timer = null;
    if (!this.active || this._held === null) return;
    const gap = Math.max(0, this._lastRefreshAt + MIN_GAP_MS - this._hooks.now());
    const delay = Math.max(refreshDelayMs(this._held, this._held.receivedMs, this._hooks.now()), gap);
    const held = this._held;
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this._held !== held) return;
      // A wait longer than a timer can take is waited in steps.
      if (delay > MAX_TIMER_MS) {
        this._schedule();
        return;
      }
      if (!this._hooks.seated()) {
        this._due = true;
        return;
      }
      void this.refresh();
    }, Math.min(delay, MAX_TIMER_MS));
  }

  /**
   * Replaces the seat's token with a fresh one from `getToken` (`auth:refresh`).
   * An `unauthorized` answer gets one more fresh token; a second failure, a
   * `forbidden`, or a token no newer than the one held gives up, with
   * `token-refresh-failed`: the seat then ends when its token runs out. A lost
   * connection waits for the seat to be back. Resolves when settled; never rejects.
   */
  refresh() {
    if (!this._refreshing) {
      this._refreshing = this._refresh().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  async _refresh() {
    if (!this.active) return;
    const seat = this._seat;
    const before = this._held;
    let failure = null;
    for (let attempt = 0; attempt < 2 && failure === null; attempt++) {
      this._lastRefreshAt = this._hooks.now();
      let token;
      let answer;
      try {
        token = await this.token('refreshing the sign-in');
        answer = await this._hooks.request('auth:refresh', { token });
      } catch (err) {
        if (this._seat !== seat) return; // the seat ended or changed meanwhile
        if (LINK_ERRORS.has(err && err.code)) {
          this._due = true;
          return;
        }
        // A token the server refused: one more, fresh from the app.
        if (attempt === 0 && err && err.code === 'unauthorized') continue;
        failure = err;
        break;
      }
      if (this._seat !== seat) return;
      const times = tokenTimes(token);
      const exp = answer && typeof answer.exp === 'number' ? answer.exp : times ? times.exp : null;
      this._held = exp === null ? null : { exp, iat: times ? times.iat : null, receivedMs: this._hooks.now() };
      if (exp !== null) this._hooks.emit('token-refreshed', { exp });
      // The same token again would be refreshed again at once, and again.
      if (exp !== null && before !== null && exp <= before.exp) {
        failure = new JamError('unauthorized', 'getToken gave no newer token than the one the seat holds');
        break;
      }
      this._schedule();
      return;
    }
    const err = failure || new JamError('unauthorized', 'the sign-in could not be refreshed');
    this._hooks.emit('token-refresh-failed', { code: err.code || 'unauthorized', message: this._hooks.describe(err) });
  }
}
