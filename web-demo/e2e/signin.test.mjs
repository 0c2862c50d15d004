// signin.test.mjs: the JamSession page on a server that requires sign-in (docs/protocol.md
// §13), in headless Chromium. The page gets its tokens from the React example's dev
// endpoint (examples/react/dev/token-server.mjs, started here in-process with the page's
// origin allowed) through `?tokenUrl=`; the real jam-server verifies them with the same
// secret file. Without a token URL the page explains that sign-in is required.
//   Run by clients/run-tests.sh after the example's `npm ci` (the endpoint needs its `jose`).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startTokenServer } from '../../examples/react/dev/token-server.mjs';
import {
  JamServer, TIMEOUT, createSession, joinSession, launchBrowser, openPlayer, waitForNames,
} from './harness.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-signin-'));
const secretFile = path.join(dir, 'jwt-secret');
let server;
let endpoint;
let browser;
const contexts = [];

before(async () => {
  server = await JamServer.create({ extraArgs: ['--jwt-secret-file', secretFile], logName: 'signin.log' });
  // The endpoint makes the secret file; the server reads it at start.
  endpoint = await startTokenServer({ secretFile, port: 0, allowOrigins: [server.baseUrl] });
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  if (browser) await browser.close();
  if (endpoint) await endpoint.close();
  if (server) await server.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function player(query) {
  const p = await openPlayer(browser, server, { query });
  contexts.push(p.context);
  return p;
}

test('the page signs in through the dev endpoint: create and join under the signed names', async () => {
  const query = `/?tokenUrl=${encodeURIComponent(endpoint.url)}`;
  const ana = await player(query);
  const connect = await ana.page.evaluate(async () => (await fetch('/connect')).json());
  assert.equal(connect.auth, 'required');
  const code = await createSession(ana.page, { name: 'Ana' });
  const ben = await player(query);
  await joinSession(ben.page, { name: 'Ben', roomCode: code });
  await waitForNames(ana.page, ['Ana', 'Ben']);
  await waitForNames(ben.page, ['Ana', 'Ben']);
  assert.deepEqual([...ana.errors, ...ben.errors], [], 'no page errors');
});

test('without a token URL the page says in plain words that sign-in is required', async () => {
  const cy = await player('/');
  await cy.page.getByTestId('name-input').fill('Cy');
  await cy.page.getByTestId('create-button').click();
  const alert = cy.page.getByTestId('error-text');
  await alert.waitFor({ state: 'visible', timeout: TIMEOUT.ui });
  assert.match(await alert.textContent(), /signed-in/);
  assert.equal(await cy.page.getByTestId('session').isVisible(), false, 'no room was made');
});
