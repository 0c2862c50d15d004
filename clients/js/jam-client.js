// jam-client.js: the client for jam-server, protocol version 1 with the 1.1
// additions (docs/protocol.md §6 to §9). It is the entry of the npm package
// `jam-client` and, the same file, what jam-server serves at `/jam-client.js`
// for its no-build page (with the modules it imports, at `/src/*.js`).
//
// This file only re-exports; each concern lives in a module of src/ (the
// transports, clock, tempo, errors, seat store, room reducer and the client).
// The API is described once: in README.md (how to use it) and in
// jam-client.d.ts (every option, property, method and event, with a line on
// each). Plain ES modules, no dependencies, no build step.

export { PROTOCOL_VERSION, PROTOCOL_FEATURES, VERSION } from './src/version.js';
export { JamError, ERROR_CODES, describeError } from './src/errors.js';
export { localNow, ClockEstimator } from './src/clock.js';
export { tempoMath, TempoTimeline } from './src/tempo.js';
export { gradeLatency } from './src/latency.js';
export { hexToBytes } from './src/webtransport.js';
export { JamClient } from './src/client.js';
