// token-server.d.mts: types of token-server.mjs, for the TypeScript tests that start it.

export declare const DEFAULT_SECRET_FILE: string;
export declare function readOrMakeSecret(file: string): string;
export declare function startTokenServer(options?: {
  secretFile?: string;
  port?: number;
  host?: string;
  lifetimeS?: number;
}): Promise<{ url: string; close(): Promise<void> }>;
