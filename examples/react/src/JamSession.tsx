// JamSession.tsx: the jam view. Connect, create a session or join one by its
// code, see who is in it (instrument, host), play notes on a small keyboard and
// hear the others'. Everything about the connection comes from jam-client's
// `useJamSession` hook; this file is only the view. Signed in (App.tsx), it
// plays under the user's name and hands the hook `getToken`; without, it asks
// for a name (a server without sign-in).

import { useState, type FormEvent } from 'react';
import { describeError, type JamError } from 'jam-client';
import { useJamEvent, useJamSession, type UseJamSessionOptions } from 'jam-client/react';
import { playNote } from './synth';

const INSTRUMENTS = ['piano', 'synth', 'bass', 'organ', 'drums']; // the web demo's

/** One octave from middle C. */
const KEYS = [
  { note: 60, label: 'C' },
  { note: 62, label: 'D' },
  { note: 64, label: 'E' },
  { note: 65, label: 'F' },
  { note: 67, label: 'G' },
  { note: 69, label: 'A' },
  { note: 71, label: 'B' },
  { note: 72, label: 'C' },
];

/** The app's own words for the errors people meet; the library's default text for the rest. */
const PLAIN_WORDS: Record<string, string> = {
  room_not_found: 'There is no session with that code. Check the code, or the session may have ended.',
  name_taken: 'Someone in that session already uses that name. Please pick another one.',
  room_full: 'That session is full.',
  invalid_message: 'Names need 1 to 32 characters.',
  unauthorized: 'The jam server did not accept your sign-in. Sign out and sign in again.',
  forbidden: 'Your sign-in does not let you into that session.',
  // The seat ended; getToken fetches a fresh token, so joining again is all it takes.
  token_expired: 'Your sign-in expired, so you left the session. Join it again to carry on.',
  connect_failed: 'Cannot reach the jam server. Is it running?',
  protocol_mismatch: 'This app and the jam server speak different protocol versions.',
  disconnected: 'The connection to the server was lost.',
  timeout: 'The server did not answer in time.',
};

function inPlainWords(err: JamError): string {
  return PLAIN_WORDS[err.code] ?? describeError(err);
}

/** A note as the jam-server web demo sends it too. */
interface Note {
  type: 'on' | 'off';
  note: number;
  velocity: number;
  instrument?: string;
}

function isNote(payload: unknown): payload is Note {
  const p = payload as Partial<Note> | null;
  return !!p && (p.type === 'on' || p.type === 'off') && typeof p.note === 'number';
}

interface Props {
  /** The jam server; the page's own origin when the app is served by it. */
  serverUrl?: string;
  /** More client options (tests pass the `ws` WebSocket here). */
  options?: UseJamSessionOptions;
  /** The signed-in user's name: the name played under (the token says it too). */
  user?: string;
  /** The user's jam sign-in token, fresh from the app's backend. */
  getToken?: () => Promise<string>;
  /** Signs the user out. */
  onSignOut?: () => void;
}

export default function JamSession({
  serverUrl = import.meta.env.VITE_JAM_SERVER ?? 'http://localhost:3001',
  options,
  user,
  getToken,
  onSignOut,
}: Props) {
  const jam = useJamSession({ baseUrl: serverUrl, getToken, ...options });
  const [typedName, setTypedName] = useState('');
  const name = user ?? typedName;
  const [instrument, setInstrument] = useState('piano');
  const [code, setCode] = useState('');
  const [heard, setHeard] = useState<{ from: string; note: number } | null>(null);

  // Notes from the others: play them and say who played what.
  useJamEvent(jam.client, 'event:broadcast', ({ eventName, payload, senderId }) => {
    if (eventName !== 'note' || !isNote(payload) || payload.type !== 'on') return;
    const sender = jam.room?.participants.find((p) => p.id === senderId);
    playNote(payload.note, payload.instrument ?? sender?.instrument);
    setHeard({ from: sender?.name ?? 'someone', note: payload.note });
  });

  // Notes are ephemeral (never kept or replayed): a player back after a blip hears no
  // burst of stale ones. A lost note-off would leave the note hanging: it goes reliably.
  function play(note: number) {
    playNote(note, instrument);
    jam.broadcast('note', { type: 'on', note, velocity: 100, instrument }, { ephemeral: true });
  }

  function release(note: number) {
    jam.broadcast('note', { type: 'off', note, velocity: 0, instrument }, { reliable: true, ephemeral: true });
  }

  function join(e: FormEvent) {
    e.preventDefault();
    void jam.join({ roomCode: code, name, instrument });
  }

  const transport = jam.transport === 'webtransport' ? 'WebTransport' : jam.transport === 'websocket' ? 'WebSocket' : 'not connected';

  return (
    <main>
      <header>
        <h1>Jam session</h1>
        <p>
          <span aria-label="connection">{jam.state}</span> · <span aria-label="transport">{transport}</span>
        </p>
      </header>

      {jam.error && (
        <p role="alert">
          {inPlainWords(jam.error)} <button onClick={jam.clearError}>Dismiss</button>
        </p>
      )}

      {!jam.room ? (
        <section aria-label="lobby">
          {user === undefined ? (
            <label>
              Your name <input value={typedName} onChange={(e) => setTypedName(e.target.value)} maxLength={32} />
            </label>
          ) : (
            <p>
              Signed in as <output aria-label="signed in as">{user}</output>{' '}
              {onSignOut && <button onClick={onSignOut}>Sign out</button>}
            </p>
          )}
          <label>
            Instrument{' '}
            <select value={instrument} onChange={(e) => setInstrument(e.target.value)}>
              {INSTRUMENTS.map((i) => (
                <option key={i}>{i}</option>
              ))}
            </select>
          </label>
          <button onClick={() => void jam.create({ name, instrument })}>Create session</button>
          <form onSubmit={join}>
            <label>
              Session code <input value={code} onChange={(e) => setCode(e.target.value)} />
            </label>
            <button type="submit">Join session</button>
          </form>
        </section>
      ) : (
        <section aria-label="session">
          <h2>
            Session <output aria-label="session code">{jam.room.roomCode}</output>
          </h2>
          <ul aria-label="players">
            {jam.room.participants.map((p) => (
              <li key={p.id}>
                {p.name} ({p.instrument || 'no instrument'})
                {p.id === jam.room?.hostId && ' · host'}
                {p.id === jam.me?.id && ' · you'}
                {p.status === 'away' && ' · reconnecting…'}
              </li>
            ))}
          </ul>
          <div role="group" aria-label="keyboard">
            {KEYS.map(({ note, label }) => (
              <button
                key={note}
                aria-label={`note ${note}`}
                onPointerDown={() => play(note)}
                onPointerUp={() => release(note)}
                onKeyDown={(e) => e.key === 'Enter' && play(note)}
              >
                {label}
              </button>
            ))}
          </div>
          <p aria-label="last note heard">{heard ? `${heard.from} played ${heard.note}` : 'Nothing heard yet'}</p>
          <button onClick={() => void jam.leave()}>Leave</button>
        </section>
      )}
    </main>
  );
}
