// colors.js: a colour for each player.
//
// Owns: which colour each participant gets. The colour follows the player's
// place in the room's join order (roster.js), which every page learns from the
// server, so every page gives a player the same colour, and a seat that
// resumes (a blip, a reload, a server restart) keeps its place and its
// colour. The hues are spread around the colour wheel away from the violet of
// your own pressed keys: the first ten players are at least 32 degrees from
// each other and from that violet, and the first few further (two players
// 98 degrees apart, up to four at least 65). Beyond ten, hues fall between those
// (16 degrees apart). A player who leaves moves the colours of those who
// joined after them. Does not own: who is in the room or its order
// (jam-client.js, roster.js).

/** The hue your own pressed keys use (the page's violet, `--accent`). */
export const OWN_HUE = 248;

/**
 * Hues by place in the room's join order. The first ten are the ten hues that
 * split the wheel into eleven equal steps with OWN_HUE (32.7 degrees apart),
 * taken in an order that keeps every first few far apart; the rest lie
 * halfway between them, away from OWN_HUE.
 */
export const HUES = [19, 117, 183, 313, 52, 346, 150, 84, 215, 281, 35, 133, 199, 330, 68, 2, 166, 100, 297];

export function createColors({ roster }) {
  /** user id -> the hue last given, for someone who has left (their chat lines) */
  const last = new Map();

  /** The hue of participant `p` (`{ id }`). */
  function hueOf(p) {
    if (!p) return HUES[0];
    const i = roster.place(p.id);
    if (i < 0) return last.get(p.id) ?? HUES[HUES.length - 1];
    const hue = HUES[i % HUES.length];
    last.set(p.id, hue);
    return hue;
  }

  /** The hue of the participant with id `id`. */
  function hueOfId(id) {
    return hueOf({ id });
  }

  return { hueOf, hueOfId };
}
