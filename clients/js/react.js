// react.js: `jam-client/react`, React bindings for jam-client.
//
// Owns: `useJamSession` (one JamClient per mounted component: its connection
// state, transport, room and last error as React state, create / join /
// leave / broadcast that report failures as that error instead of throwing,
// and the `getToken` of the latest render handed to the client)
// and `useJamEvent` (a typed subscription to any client event that follows
// the component's lifecycle). Does not own: the client's workings
// (jam-client.js) or any wording or markup (the app's).

import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { JamClient, JamError } from './jam-client.js';

/** What the hook renders from: a fresh object whenever the client changed. */
function snapshotOf(client) {
  return {
    state: client ? client.state : 'idle',
    transport: client ? client.transport : null,
    // A copy: the client updates its room in place, React compares by identity.
    room: client && client.room ? { ...client.room } : null,
  };
}

/** Any thrown thing as a JamError (the hook's `error` is always one). */
function asJamError(err) {
  if (err instanceof JamError) return err;
  return new JamError('error', (err && err.message) || String(err), { cause: err });
}

/**
 * A jam session for a component: makes a JamClient when the component mounts
 * (with `options`, read once), connects it (or takes back the seat a reload
 * left) unless `autoConnect` is false, and closes it when the component
 * unmounts (without leaving: the server holds the seat for its resume window).
 * `getToken` is the exception to "read once": the client calls the one of the
 * latest render, so it may close over state (the signed-in user).
 */
export function useJamSession(options = {}) {
  // The options of the first render: a new client per render would drop the room.
  const first = useRef(options);
  const getToken = useRef(options.getToken);
  useLayoutEffect(() => {
    getToken.current = options.getToken;
  });
  const [client, setClient] = useState(null);
  const [snapshot, setSnapshot] = useState(() => snapshotOf(null));
  const [error, setError] = useState(null);

  useEffect(() => {
    const { autoConnect = true, ...clientOptions } = first.current;
    // A client made with `getToken` asks the latest one; one made without never sends a token.
    const firstGetToken = clientOptions.getToken;
    if (typeof firstGetToken === 'function') {
      clientOptions.getToken = () => (typeof getToken.current === 'function' ? getToken.current : firstGetToken)();
    }
    const c = new JamClient(clientOptions);
    const update = () => setSnapshot(snapshotOf(c));
    const offs = [
      c.on('state', update),
      c.on('room', update),
      c.on('reconnected', update),
      // Errors that answer no request of ours (requests report their own).
      c.on('error', (data, envelope) => {
        if (envelope.id === undefined) setError(new JamError(data.code || 'error', data.message));
      }),
      c.on('session-ended', ({ code, message }) => setError(new JamError(code, message))),
    ];
    setClient(c);
    update();
    let mounted = true;
    if (autoConnect && !c.restore()) {
      c.connect().catch((err) => {
        // A client closed on unmount (React's StrictMode mounts twice) is no error.
        if (mounted) setError(asJamError(err));
      });
    }
    return () => {
      mounted = false;
      for (const off of offs) off();
      c.close('unmounted');
      setClient(null);
    };
  }, []);

  /** Runs `fn(client)`; a failure becomes `error` and the result undefined. */
  const run = useCallback(
    async (fn) => {
      if (!client) {
        setError(new JamError('not_connected', 'not connected'));
        return undefined;
      }
      setError(null);
      try {
        return await fn(client);
      } catch (err) {
        setError(asJamError(err));
        return undefined;
      }
    },
    [client],
  );

  const connect = useCallback(() => run((c) => c.connect()), [run]);
  const create = useCallback(
    (args) =>
      run(async (c) => {
        await c.connect();
        return c.create(args);
      }),
    [run],
  );
  const join = useCallback(
    (args) =>
      run(async (c) => {
        await c.connect();
        return c.join(args);
      }),
    [run],
  );
  const leave = useCallback(async () => {
    await run((c) => c.leave());
  }, [run]);
  const broadcast = useCallback(
    (eventName, payload, opts) => (client ? client.broadcast(eventName, payload, opts) : null),
    [client],
  );
  const clearError = useCallback(() => setError(null), []);

  const { state, transport, room } = snapshot;
  const me = room ? room.participants.find((p) => p.id === room.userId) || null : null;
  return {
    client,
    state,
    transport,
    room,
    me,
    isHost: !!room && room.hostId === room.userId,
    error,
    connect,
    create,
    join,
    leave,
    broadcast,
    clearError,
  };
}

/**
 * Listens to client event `name` while the component is mounted and `client`
 * is set; `handler` may change from render to render without resubscribing.
 * The handler an event meets is the one of the last committed render: it is swapped
 * in a layout effect, which runs as the render commits, not in a passive effect that
 * may run after the next event has already arrived.
 */
export function useJamEvent(client, name, handler) {
  const latest = useRef(handler);
  useLayoutEffect(() => {
    latest.current = handler;
  });
  useEffect(() => {
    if (!client) return undefined;
    return client.on(name, (...args) => latest.current(...args));
  }, [client, name]);
}
