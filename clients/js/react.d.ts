// react.d.ts: the types of `jam-client/react` (react.js).

import type {
  BroadcastOptions,
  BroadcastPath,
  ClientState,
  JamClient,
  JamClientOptions,
  JamError,
  JamEventName,
  JamListener,
  Participant,
  Room,
  SeatAnswer,
  Transport,
} from './jam-client.js';

/**
 * `useJamSession(options)`: the client's options, read once (but `getToken`,
 * whose latest version is always the one called), plus `autoConnect`.
 */
export interface UseJamSessionOptions extends JamClientOptions {
  /** Connect on mount (or take back the seat a reload left). Default true. */
  autoConnect?: boolean;
}

/** What `useJamSession` returns; re-rendered whenever any of it changes. */
export interface JamSession {
  /** The client, once mounted (null on the first render and after unmount). */
  client: JamClient | null;
  state: ClientState;
  /** The transport in use, or null. */
  transport: Transport | null;
  /** The room while in one, else null. */
  room: Room | null;
  /** This client's own entry in `room.participants`, else null. */
  me: Participant | null;
  /** Whether this client is the room's host. */
  isHost: boolean;
  /** The last failure: of an action, an unanswered `error`, or the seat ending. */
  error: JamError | null;
  /** Connects; resolves to the transport, or undefined on failure (see `error`). */
  connect(): Promise<Transport | undefined>;
  /** Connects if needed and creates a room; undefined on failure (see `error`). */
  create(args: { name: string; instrument?: string | null }): Promise<SeatAnswer | undefined>;
  /** Connects if needed and joins a room by code; undefined on failure (see `error`). */
  join(args: { roomCode: string; name: string; instrument?: string | null }): Promise<SeatAnswer | undefined>;
  /** Leaves the room for good. */
  leave(): Promise<void>;
  /** `client.broadcast` (send notes with `{ ephemeral: true }`); null when not sent. */
  broadcast(eventName: string, payload?: unknown, options?: BroadcastOptions): BroadcastPath | null;
  /** Forgets `error`. */
  clearError(): void;
}

/** A jam session for a component: one client per mount, closed on unmount. */
export declare function useJamSession(options?: UseJamSessionOptions): JamSession;

/** Listens to a client event while mounted; the handler may change freely. */
export declare function useJamEvent<K extends JamEventName>(
  client: JamClient | null,
  name: K,
  handler: JamListener<K>,
): void;
