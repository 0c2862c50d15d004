// messages.js: the page's words for errors.
//
// Owns: the sentence a person reads for each error code the client library
// reports (jam-client keeps the codes and only a short default text, so each
// app words them its own way). Does not own: where the words are shown
// (status.js, views.js), the codes themselves, or how an error is worded:
// errors.js hands these words to jam-client's `describeError`, which falls back
// on the client's default text for a code without words here. Plain data, so
// the Node tests read it too.

/** Plain-language text for every error code the page may meet. */
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
  protocol_mismatch: 'This page and the server do not speak the same protocol version. Reload the page; if that does not help, the server needs updating.',
  resume_failed: 'The server could not give your seat back.',
  unavailable: 'The server cannot open new rooms right now. Try again in a moment.',
  room_elsewhere: 'The room is on another server; moving there…',
  resumed_elsewhere: 'This seat was taken up in another tab or window.',
  origin_not_allowed: "This server does not accept connections from this page's address (origin). Ask whoever runs the server to add it to --allowed-origins.",
};
