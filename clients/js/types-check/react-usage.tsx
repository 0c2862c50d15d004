// react-usage.tsx: `jam-client/react` as a component uses it, checked by
// `tsc --noEmit` (never run).

import { useJamEvent, useJamSession } from 'jam-client/react';

export function Presence() {
  const { client, room, me, isHost, transport, error, create, join, leave, broadcast } = useJamSession({
    baseUrl: 'http://127.0.0.1:3001',
  });
  useJamEvent(client, 'event:broadcast', ({ eventName, payload, senderId }) => console.log(eventName, payload, senderId));
  useJamEvent(client, 'session:user-left', ({ userId }) => console.log(userId));
  return (
    <div>
      <p>
        {transport ?? 'offline'} {error ? `${error.code}: ${error.message}` : ''} {me?.name} {isHost ? 'host' : ''}
      </p>
      <ul>
        {room?.participants.map((p) => (
          <li key={p.id}>
            {p.name} {p.instrument} {p.id === room.hostId ? '(host)' : ''} {p.status}
          </li>
        ))}
      </ul>
      <button onClick={() => void create({ name: 'Ana', instrument: 'piano' })}>Create</button>
      <button onClick={() => void join({ roomCode: 'ABC123', name: 'Ben' }).then((r) => r?.roomCode)}>Join</button>
      <button onClick={() => broadcast('note', { note: 60 })}>C</button>
      <button onClick={() => void leave()}>Leave</button>
    </div>
  );
}
