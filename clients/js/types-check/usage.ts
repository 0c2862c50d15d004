// usage.ts: the package as an app uses it, checked by `tsc --noEmit`. The
// block between the README markers is the README's snippet, word for word:
// test/readme.test.mjs checks that they stay the same and runs that block
// against the real server.

import type { BroadcastOptions, JamEvents, Participant, Room, SeatAnswer, Tempo, Transport } from 'jam-client';
import { ERROR_CODES, PROTOCOL_VERSION, VERSION, gradeLatency, tempoMath } from 'jam-client';

// README: npm
import { JamClient, JamError, describeError } from 'jam-client';
import { WebSocket } from 'ws'; // Node 20 only: browsers have WebSocket and WebTransport

const client = new JamClient({ baseUrl: 'http://127.0.0.1:3001', WebSocket });
client.on('session:user-joined', ({ user }) => console.log(`${user.name} joined on ${user.instrument}`));
client.on('session:user-left', ({ userId }) => console.log(`${userId} left`));
client.on('event:broadcast', ({ eventName, payload, senderId }) => console.log(senderId, eventName, payload));
client.on('state', ({ state, transport }) => console.log(state, transport));

const transport = await client.connect(); // 'webtransport' or 'websocket'
const { roomCode, participants } = await client.create({ name: 'Ana', instrument: 'piano' });
console.log(`room ${roomCode} over ${transport}, ${participants.length} in it`);
client.broadcast('note', { type: 'on', note: 60, velocity: 100 }, { ephemeral: true }); // a datagram over WebTransport

await client.leave();
try {
  await client.join({ roomCode: 'NOPE42', name: 'Ben' });
} catch (err) {
  if (err instanceof JamError) console.log(err.code, describeError(err)); // room_not_found no room with that code
}
client.close();
// README: end

// Everything public has a type; these lines only check that the types say what they mean.
export function typed(client: import('jam-client').JamClient): void {
  const v: 1 = PROTOCOL_VERSION;
  const s: string = VERSION;
  const text: string = ERROR_CODES.protocol_mismatch;
  const refused: string = ERROR_CODES.origin_not_allowed;
  const words = { room_not_found: 'There is no session with that code.', origin_not_allowed: 'Not from this page.' } as const;
  const worded: string = describeError({ code: 'origin_not_allowed' }, words);
  const grade: 'good' | 'playable' | 'hard' | null = gradeLatency(client.delayMs('u1'));
  const beatMs: number = tempoMath.beatMs(tempoMath.defaultAt(0));
  const t: Transport | null = client.transport;
  const room: Room | null = client.room;
  const who: Participant[] = room ? room.participants : [];
  const rtt: number | null = who.length ? who[0].rttMs : null;
  const tempo: Tempo | null = client.tempo;
  const sent: number = client.stats.broadcastsSent + client.stats.datagramsSent;
  const offset: number | null = client.clock.offsetMs;
  const next: number | null = client.nextBeatTime();
  const bar = client.barAt();
  const beatInBar: number | undefined = bar?.beatInBar;
  const path: 'datagram' | 'stream' | 'websocket' | null = client.broadcast('note', { note: 60 }, { reliable: true });
  const noteOff: BroadcastOptions = { reliable: true, ephemeral: true };
  client.broadcast('note', { type: 'off', note: 60 }, noteOff);
  client.on('event:broadcast', ({ ephemeral }) => console.log(ephemeral === true ? 'never replayed' : 'kept'));
  const off: () => void = client.on('room', (r) => console.log(r?.hostId));
  off();
  client.once('session-ended', ({ roomCode, code, message }) => console.log(roomCode, code, message));
  client.on('reconnecting', ({ attempt, delayMs, restoring }) => console.log(attempt, delayMs, restoring));
  client.on('error', ({ code, message }, envelope, channel) => console.log(code, message, envelope.id, channel));
  client.on('tempo', ({ tempo: now, pending }) => console.log(now?.bpm, pending?.originTime));
  client.on('clock', ({ offsetMs, errorMs }) => console.log(offsetMs, errorMs));
  const args: JamEvents['session:user-joined'] = [{ user: who[0] }, { event: 'session:user-joined', data: { user: who[0] } }, 'stream'];
  const answer: Promise<SeatAnswer> = client.join({ roomCode: 'ABC123', name: 'Ben', instrument: null });
  // Signing in: getToken sync or async; the sign-in errors and events.
  const signedIn = new JamClient({ getToken: async () => (await fetch('/api/jam-token')).text() });
  const signedInSync = new JamClient({ getToken: () => 'header.payload.signature' });
  const expired: string = ERROR_CODES.token_expired + ERROR_CODES.unauthorized + ERROR_CODES.forbidden;
  signedIn.on('token-refreshed', ({ exp }) => console.log(exp.toFixed()));
  signedIn.on('token-refresh-failed', ({ code, message }) => console.log(code, message));
  signedIn.on('auth:refreshed', ({ exp }, envelope) => console.log(exp, envelope.id));
  signedIn.on('session-ended', ({ code }) => console.log(code === 'token_expired' ? 'sign in again' : code));
  const required: 'required' | undefined = signedInSync.connectInfo?.auth;
  void [v, s, text, grade, beatMs, t, rtt, tempo, sent, offset, next, beatInBar, path, args, answer, expired, required];
}
