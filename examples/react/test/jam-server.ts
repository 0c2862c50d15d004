// jam-server.ts: Vitest's global set-up: the real jam-server on loopback port 0
// for the whole run (target/debug/jam-server, or $JAM_SERVER_BIN), its address
// handed to the tests as `inject('jamServer')`; and a second one with sign-in on
// (`--jwt-secret-file`, a fresh secret) beside the example's dev token endpoint
// (dev/token-server.mjs) signing with the same secret, as `npm run dev` pairs them:
// `inject('signedInServer')` and `inject('tokenUrl')`.

import type { TestProject } from 'vitest/node';
import { JamServer } from '../../../clients/js/test/server.mjs';
import { startTokenServer } from '../dev/token-server.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    jamServer: string;
    signedInServer: string;
    tokenUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const [server, signedIn] = await Promise.all([JamServer.start(), JamServer.startWithSecret()]);
  const endpoint = await startTokenServer({ secretFile: signedIn.secretFile!, port: 0 });
  project.provide('jamServer', server.baseUrl);
  project.provide('signedInServer', signedIn.baseUrl);
  project.provide('tokenUrl', endpoint.url);
  return async () => {
    await endpoint.close();
    await Promise.all([server.stop(), signedIn.stop()]);
  };
}
