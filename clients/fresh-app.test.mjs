// fresh-app.test.mjs: the browser half of clients/fresh-app.sh. The production build of
// the fresh app ($FRESH_APP_DIST) is served from an origin of its own by a small static
// server here; the real jam-server runs on free ports and allows exactly that origin
// (`--allowed-origins`, as a deployment would); headless Chromium opens the page with the
// server's address in `?server=`. The page must connect, create a room and show its
// six-character code and its one participant, with no page error and no console error.
// Two copies of React fail here at once: the hook's first `useRef` throws in the page.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { JamServer, TIMEOUT, launchBrowser } from '../web-demo/e2e/harness.mjs';
import { serveDir } from './static-site.mjs';

const DIST = process.env.FRESH_APP_DIST;
/** docs/protocol.md: six characters of this alphabet. */
const ROOM_CODE = /^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$/;
let site;
let jam;
let browser;

before(async () => {
  assert.ok(DIST && fs.existsSync(path.join(DIST, 'index.html')), `FRESH_APP_DIST (${DIST}) holds no built app`);
  site = await serveDir(path.resolve(DIST));
  jam = await JamServer.create({ extraArgs: ['--allowed-origins', site.origin], logName: 'fresh-app-server.log' });
  await jam.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (jam) await jam.dispose();
  if (site) await site.close();
});

test('the fresh app, built, creates a room on the real server and shows its code', { timeout: 60_000 }, async (t) => {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT.ui);
  const page = await context.newPage();
  const pageErrors = [];
  const consoleErrors = [];
  // A page error ends the wait at once: a blank page never shows a code.
  let failed;
  const pageFailed = new Promise((_, reject) => {
    failed = reject;
  });
  pageFailed.catch(() => {});
  page.on('pageerror', (err) => {
    pageErrors.push(err.message);
    failed(new Error(`page error: ${err.message}`));
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });

  try {
    await page.goto(`${site.origin}/?server=${encodeURIComponent(jam.baseUrl)}`);
    const code = page.getByLabel('room code');
    await Promise.race([code.waitFor({ timeout: TIMEOUT.ui }), pageFailed]);
    const roomCode = (await code.textContent()).trim();
    assert.match(roomCode, ROOM_CODE);
    const players = page.getByRole('list', { name: 'participants' }).getByRole('listitem');
    assert.deepEqual(await players.allTextContents(), ['Fresh (piano)']);
    assert.equal(await page.getByLabel('connection').textContent(), 'connected');
    t.diagnostic(`room ${roomCode} over ${await page.getByLabel('transport').textContent()}, page at ${site.origin}`);
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleErrors, []);
  } catch (err) {
    const body = await page.locator('body').innerHTML().catch(() => '(no page)');
    err.message += `\npage errors: ${JSON.stringify(pageErrors)}\nconsole errors: ${JSON.stringify(consoleErrors)}\nbody: ${body}`;
    throw err;
  } finally {
    await context.close();
  }
});
