// react-usage.tsx: `jam-client/react` as a component uses it, checked by
// `tsc --noEmit` (never run; examples/react's tests render the full example).
// The block between the README markers is the README's React snippet, word
// for word (test/readme.test.mjs checks that).

// README: react
import { useJamEvent, useJamSession } from 'jam-client/react';

export function Jam({ name }: { name: string }) {
  const jam = useJamSession({ baseUrl: 'http://localhost:3001' }); // connects on mount, closes on unmount
  useJamEvent(jam.client, 'event:broadcast', ({ eventName, payload, senderId }) => console.log(senderId, eventName, payload));

  if (!jam.room) {
    return (
      <>
        <button onClick={() => jam.create({ name, instrument: 'piano' })}>Start a session</button>
        {jam.error && <p role="alert">{jam.error.code}: {jam.error.message}</p>}
      </>
    );
  }
  return (
    <>
      <p>Session {jam.room.roomCode} over {jam.transport}</p>
      <ul>
        {jam.room.participants.map((p) => (
          <li key={p.id}>
            {p.name} ({p.instrument}){p.id === jam.room?.hostId && ' · host'}
          </li>
        ))}
      </ul>
      <button onClick={() => jam.broadcast('note', { type: 'on', note: 60, velocity: 100 }, { ephemeral: true })}>C</button>
      <button onClick={() => jam.leave()}>Leave</button>
    </>
  );
}
// README: end

export function Presence() {
  const { client, room, me, isHost, transport, error, join, broadcast } = useJamSession({ autoConnect: false, reconnect: false });
  const said: 'datagram' | 'stream' | 'websocket' | null = broadcast('chat', { text: 'hi' }, { reliable: true, ephemeral: false });
  void said;
  useJamEvent(client, 'session:user-left', ({ userId }) => console.log(userId));
  useJamEvent(client, 'user-away', ({ user }) => console.log(user?.name, 'is reconnecting'));
  return (
    <div>
      <p>
        {transport ?? 'offline'} {error ? `${error.code}: ${error.message}` : ''} {me?.name} {isHost ? 'host' : ''}
      </p>
      <p>{room?.participants.map((p) => `${p.name} ${p.status} ${p.rttMs ?? '?'} ms`).join(', ')}</p>
      <button onClick={() => void join({ roomCode: 'ABC123', name: 'Ben' }).then((r) => r?.roomCode)}>Join</button>
    </div>
  );
}

/** The hook with the app's tokens: getToken may close over the signed-in user. */
export function SignedIn({ user }: { user: string }) {
  const jam = useJamSession({
    baseUrl: 'http://localhost:3001',
    getToken: async () => {
      const res = await fetch('/api/jam-token', { method: 'POST', body: JSON.stringify({ user }) });
      return ((await res.json()) as { token: string }).token;
    },
  });
  useJamEvent(jam.client, 'token-refresh-failed', ({ message }) => console.log(message));
  return <p>{jam.error?.code === 'token_expired' ? 'Sign in again' : jam.state}</p>;
}
