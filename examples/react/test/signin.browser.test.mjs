// signin.browser.test.mjs: the example's production build signs in and plays in headless
// Chromium, with everything it needs running as in development: the dev token endpoint
// (dev/token-server.mjs, run as `npm run dev` runs it, making its secret file), the real
// jam-server started with that same file (`--jwt-secret-file`) and allowing exactly the
// page's origin (`--allowed-origins`), and a small static server for dist/ that passes
// `/token` on to the endpoint, as Vite's dev server does. The page was built for a jam
// server at its default address: its `GET /connect` is answered by the real one.
//   node --test test/signin.browser.test.mjs   (after vite build; clients/run-tests.sh)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { JamServer, TIMEOUT, freeTcpPort, launchBrowser } from '../../../web-demo/e2e/harness.mjs';
import { stopProcess } from '../../../web-demo/e2e/server.mjs';
import { serveDir } from '../../../clients/static-site.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLE = path.resolve(here, '..');
const DIST = path.join(EXAMPLE, 'dist');
/** docs/protocol.md: six characters of this alphabet. */
const ROOM_CODE = /^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$/;

/** dev/token-server.mjs as a child process; resolves once it listens. */
async function startTokenEndpoint(secretFile) {
  const port = await freeTcpPort();
  const proc = spawn(process.execPath, [path.join(EXAMPLE, 'dev', 'token-server.mjs')], {
    env: { ...process.env, JAM_JWT_SECRET_FILE: secretFile, TOKEN_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`token endpoint not listening within ${TIMEOUT.ready} ms:\n${output}`)), TIMEOUT.ready);
    const onData = (chunk) => {
      output += chunk;
      if (output.includes('token endpoint listening at')) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`token endpoint exited with ${code}:\n${output}`));
    });
  });
  return { proc, port, output: () => output };
}

let dir;
let endpoint;
let site;
let jam;
let browser;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, 'index.html')), `${DIST} holds no build: run \`npx vite build\` first`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-signin-'));
  const secretFile = path.join(dir, 'jwt-secret');
  endpoint = await startTokenEndpoint(secretFile);
  assert.ok(fs.existsSync(secretFile), 'the endpoint made its secret file');
  site = await serveDir(DIST, { proxy: { path: '/token', port: endpoint.port } });
  jam = await JamServer.create({
    extraArgs: ['--jwt-secret-file', secretFile, '--allowed-origins', site.origin],
    logName: 'react-signin-server.log',
  });
  await jam.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (jam) await jam.dispose();
  if (site) await site.close();
  if (endpoint) await stopProcess(endpoint.proc);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the built example signs in through the token endpoint and creates a room on the real server', { timeout: 60_000 }, async (t) => {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT.ui);
  // The build's jam server address (http://localhost:3001 unless VITE_JAM_SERVER said
  // otherwise) is answered by the test's server.
  await context.route(
    (url) => url.pathname === '/connect' && url.origin !== jam.baseUrl && url.origin !== site.origin,
    async (route) => {
      const asked = new URL(route.request().url());
      const res = await route.fetch({ url: `${jam.baseUrl}/connect${asked.search}` });
      await route.fulfill({ response: res });
    },
  );
  const page = await context.newPage();
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });

  try {
    await page.goto(site.origin);
    await page.getByLabel('Your name').fill('Robin');
    await page.getByRole('button', { name: 'Sign in' }).click();
    assert.equal(await page.getByLabel('signed in as', { exact: true }).textContent(), 'Robin');
    await page.getByLabel('connection', { exact: true }).getByText('connected', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Create session' }).click();
    // The lobby's "Session code" field goes; the session's code shows.
    const roomCode = (await page.getByLabel('session code', { exact: true }).textContent()).trim();
    assert.match(roomCode, ROOM_CODE);
    const players = page.getByRole('list', { name: 'players' }).getByRole('listitem');
    assert.deepEqual(await players.allTextContents(), ['Robin (piano) · host · you']);
    assert.equal(await page.getByRole('alert').count(), 0);
    t.diagnostic(`room ${roomCode} over ${await page.getByLabel('transport', { exact: true }).textContent()}, page at ${site.origin}`);
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleErrors, []);
  } finally {
    await context.close();
  }
});
