// version.js: which protocol this client speaks and which package version it is.
//
// Owns: PROTOCOL_VERSION (the `protocol` of `GET /connect` this client
// expects), PROTOCOL_FEATURES (the additions it uses when the server lists
// them) and VERSION. Does not own: checking a server against them (client.js).

/** The protocol version this client speaks (`protocol` in `GET /connect`). */
export const PROTOCOL_VERSION = 1;

/** The protocol features this client uses when `GET /connect` lists them: 1.1's, and sign-in (`auth`). */
export const PROTOCOL_FEATURES = Object.freeze(['resume', 'clock', 'latency', 'tempo', 'origins', 'auth']);

/** This package's version (package.json's): major and minor are the protocol's, 1.2. */
export const VERSION = '1.2.0';
