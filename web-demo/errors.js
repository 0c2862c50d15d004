// errors.js: an error as the page words it.
//
// Owns: binding the page's words (messages.js) to jam-client's `describeError`,
// so every part of the page says an error the same way. Does not own: the
// words (messages.js), the default text or the logic (jam-client).

import { describeError as describeInWords } from './jam-client.js';
import { ERROR_TEXT } from './messages.js';

/** Turns an error (or an error code) into a sentence for people, in the page's words. */
export function describeError(err) {
  return describeInWords(err, ERROR_TEXT);
}
