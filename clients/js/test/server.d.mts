// server.d.mts: types of server.mjs, for TypeScript tests that start the real server
// (examples/react's Vitest set-up).

import type { JamClient, JamEventName, JamEvents } from '../jam-client.js';

export declare const REPO: string;
export declare const SERVER_BIN: string;
export declare const READY_MS: number;
export declare function dropTransport(client: JamClient): void;
export declare class JamServer {
  static start(extraArgs?: string[]): Promise<JamServer>;
  /** The server with sign-in on: a fresh HS256 secret in a temporary file, `--jwt-secret-file`. */
  static startWithSecret(extraArgs?: string[]): Promise<JamServer>;
  /** `http://127.0.0.1:PORT` of the running server. */
  baseUrl: string;
  /** With sign-in on: the HS256 secret (else null). */
  secret: string | null;
  /** With sign-in on: the file that holds it (else null). */
  secretFile: string | null;
  log: string;
  stop(): Promise<void>;
}
export declare function nextEvent<K extends JamEventName>(
  client: JamClient,
  name: K,
  pred?: (...args: JamEvents[K]) => boolean,
  ms?: number,
): Promise<JamEvents[K]>;
