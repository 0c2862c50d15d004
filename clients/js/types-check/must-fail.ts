// must-fail.ts: mistakes the types must catch. Each line after a
// `@ts-expect-error` is wrong on purpose: tsc fails if one of them compiles,
// and must-fail.mjs checks that each one fails on its own line.

import { JamClient, describeError } from 'jam-client';
import { useJamEvent, type JamSession } from 'jam-client/react';

export function mistakes(client: JamClient, jam: JamSession): void {
  // @ts-expect-error an event name that does not exist
  client.on('session:user-joind', () => {});
  // @ts-expect-error a field that session:user-joined does not have
  client.on('session:user-joined', ({ member }) => console.log(member));
  // @ts-expect-error a field that a participant does not have
  client.on('session:user-joined', ({ user }) => console.log(user.nickname));
  // @ts-expect-error event:broadcast has no `from`
  client.on('event:broadcast', ({ from }) => console.log(from));
  // @ts-expect-error state is not a number
  client.on('state', ({ state }) => state.toFixed());
  // @ts-expect-error join needs a roomCode
  void client.join({ name: 'Ben' });
  // @ts-expect-error an option that does not exist
  void new JamClient({ baseURL: 'http://x' });
  // @ts-expect-error a transport that does not exist
  void new JamClient({ transport: 'tcp' });
  // @ts-expect-error a stats counter that does not exist
  void client.stats.notesSent;
  // @ts-expect-error words for an error code that does not exist
  void describeError('room_not_found', { room_not_fond: 'No such session.' });
  // @ts-expect-error words are text
  void describeError('room_full', { room_full: 404 });
  // @ts-expect-error the hook checks event names too
  useJamEvent(client, 'user-joined', () => {});
  // @ts-expect-error getToken returns the token (a string), not an object
  void new JamClient({ getToken: () => ({ token: 'x' }) });
  // @ts-expect-error a refresh says when the token expires, nothing about the user
  client.on('token-refreshed', ({ sub }) => console.log(sub));
  // @ts-expect-error the hook's broadcast takes the client's options, no others
  jam.broadcast('note', { note: 60 }, { ephemral: true });
}
