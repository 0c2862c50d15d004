// jam-server.ts: Vitest's global set-up: the real jam-server on loopback port 0
// for the whole run (target/debug/jam-server, or $JAM_SERVER_BIN), its address
// handed to the tests as `inject('jamServer')`.

import type { TestProject } from 'vitest/node';
import { JamServer } from '../../../clients/js/test/server.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    jamServer: string;
  }
}

export default async function setup(project: TestProject) {
  const server = await JamServer.start();
  project.provide('jamServer', server.baseUrl);
  return () => server.stop();
}
