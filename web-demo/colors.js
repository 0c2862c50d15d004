// colors.js: a colour for each player.
//
// Owns: which colour each participant gets: one of a fixed palette whose hues
// all stay clear of the page's own highlight (the violet of keys you press),
// picked from the player's name (names are unique in a room and survive a
// reconnect or a fresh join), moved on to the next free colour when another
// player in the room has it, and kept for the life of the page once given.
// Does not own: who is in the room (jam-client.js).

/** Hues (degrees) far from the violet of your own keys (about 245) and its pink accent. */
export const PALETTE = [145, 30, 190, 0, 60, 170, 20, 95, 205, 345, 45, 120];

/** The hue your own pressed keys use; no player colour comes within 40 degrees of it. */
export const OWN_HUE = 248;

function nameKey(name) {
  return String(name || '').normalize('NFKC').toLowerCase();
}

function hash(text) {
  let h = 2166136261;
  for (const c of text) h = Math.imul(h ^ c.codePointAt(0), 16777619) >>> 0;
  return h;
}

export function createColors({ client }) {
  /** name key -> palette index, never changed once given */
  const given = new Map();

  /** The hue of participant `p` (`{ id, name }`). */
  function hueOf(p) {
    if (!p) return PALETTE[0];
    const key = nameKey(p.name);
    if (!given.has(key)) {
      const room = client.room;
      const taken = new Set();
      for (const other of room ? room.participants : []) {
        const k = nameKey(other.name);
        if (k !== key && given.has(k)) taken.add(given.get(k));
      }
      let i = hash(key) % PALETTE.length;
      for (let n = 0; n < PALETTE.length && taken.has(i); n++) i = (i + 1) % PALETTE.length;
      given.set(key, i);
    }
    return PALETTE[given.get(key)];
  }

  /** The hue of the participant with id `id` in the room (or `fallback`'s). */
  function hueOfId(id, fallback) {
    const p = (client.room && client.room.participants.find((q) => q.id === id)) || fallback;
    return hueOf(p || { name: id });
  }

  return { hueOf, hueOfId };
}
