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
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { JamServer, TIMEOUT, freeTcpPort, launchBrowser } from '../../../web-demo/e2e/harness.mjs';
import { stopProcess } from '../../../web-demo/e2e/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLE = path.resolve(here, '..');
const DIST = path.join(EXAMPLE, 'dist');
/** docs/protocol.md: six characters of this alphabet. */
const ROOM_CODE = /^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$/;
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

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

/** dist/ on 127.0.0.1, with `/token` passed on to the endpoint on `tokenPort`. */
async function serveApp(tokenPort) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/token') {
      const upstream = http.request({ host: '127.0.0.1', port: tokenPort, path: '/token', method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(upstream);
      return;
    }
    const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname).slice(1);
    const file = path.resolve(DIST, rel);
    if (!file.startsWith(DIST + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(fs.readFileSync(file));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
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
  site = await serveApp(endpoint.port);
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
