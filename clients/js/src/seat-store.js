// seat-store.js: where the seat is kept so a reload of the page takes it back.
//
// Owns: reading and writing the seat (`{ roomCode, userId, name, instrument,
// resumeToken, lastSeq }`) in sessionStorage (one per tab) or any storage with
// getItem/setItem/removeItem, checking what it reads back, and writing the
// fast-moving `lastSeq` at most once a second. A storage that is off, full or
// throws only costs the reload; nothing here fails. Does not own: which seat
// the client holds or when it changes (client.js).

/** sessionStorage when the page has one (reading it may throw in a sandboxed frame). */
function defaultStorage() {
  try {
    return globalThis.sessionStorage || null;
  } catch {
    return null;
  }
}

/** A stored seat, or null when `text` is not one. */
export function parseSeat(text) {
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

/** How long a `lastSeq` change may wait before it is written. */
const SAVE_SOON_MS = 1000;

/** The seat in a storage under one key. */
export class SeatStore {
  /**
   * `storage`: undefined for the page's sessionStorage, null for none (memory
   * only). `currentSeat()` returns the seat to write when a delayed save runs.
   */
  constructor(storage, key, currentSeat) {
    this._storage = storage === undefined ? defaultStorage() : storage;
    this._key = key;
    this._currentSeat = currentSeat;
    this._timer = null;
  }

  /** The stored seat, or null. */
  load() {
    if (!this._storage) return null;
    try {
      const text = this._storage.getItem(this._key);
      return text ? parseSeat(text) : null;
    } catch {
      return null;
    }
  }

  /** Stores the seat held now (without one the storage is left alone). */
  save() {
    this._cancel();
    const seat = this._currentSeat();
    if (!this._storage || !seat) return;
    try {
      this._storage.setItem(this._key, JSON.stringify(seat));
    } catch {
      // Storage full or off: the seat still survives reconnects, just not a reload.
    }
  }

  /** Stores the seat within a second: `lastSeq` moves with every reliable message. */
  saveSoon() {
    if (!this._storage || this._timer) return;
    this._timer = setTimeout(() => this.save(), SAVE_SOON_MS);
  }

  /** Forgets the stored seat. */
  remove() {
    this._cancel();
    if (!this._storage) return;
    try {
      this._storage.removeItem(this._key);
    } catch {
      // storage off: nothing was kept
    }
  }

  _cancel() {
    clearTimeout(this._timer);
    this._timer = null;
  }
}
