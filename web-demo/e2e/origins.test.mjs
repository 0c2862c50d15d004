// origins.test.mjs: docs/protocol.md §10 in Chromium. The web app lives on
// one origin (a small static server this test starts on 127.0.0.1) and the jam
// server on another (http://127.0.0.1:<jam port>). With the page's origin in
// `--allowed-origins`, the page reads GET /connect across origins (CORS) and
// two pages jam together, one over WebTransport and one over WebSocket. With
// only https://jam.example.com allowed, the same page cannot read /connect,
// its WebSocket never opens (the server answers 403) and its WebTransport
// session is refused, while a native client without Origin still gets in.
//
// The page gets jam-client.js from its own origin: the static server serves
// clients/js/jam-client.js and its modules (clients/js/src/, the npm package's files) as read
// from disk when the test runs.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { JamServer, REPO, TIMEOUT, launchBrowser } from './harness.mjs';

const CLIENT_DIR = path.join(REPO, 'clients', 'js');

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>jam on another origin</title>
<script type="module">
  import { JamClient } from './jam-client.js';
  window.JamClient = JamClient;
</script>
`;

/** A static site on 127.0.0.1: `/` is PAGE, `/jam-client.js` the client library, `/src/*.js` its modules. */
async function startSite() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
    } else if (url.pathname === '/jam-client.js' || /^\/src\/[a-z-]+\.js$/.test(url.pathname)) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(fs.readFileSync(path.join(CLIENT_DIR, url.pathname)));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(resolve);
    }),
  };
}

/** A page of the static site in a browser context of its own, with JamClient loaded. */
async function openSitePage(browser, site) {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT.ui);
  const page = await context.newPage();
  const who = { context, page, errors: [], console: [] };
  page.on('pageerror', (err) => who.errors.push(err));
  page.on('console', (msg) => who.console.push(`${msg.type()}: ${msg.text()}`));
  await page.goto(`${site.origin}/`);
  await page.waitForFunction(() => typeof window.JamClient === 'function', null, { timeout: TIMEOUT.ui });
  assert.equal(await page.evaluate(() => location.origin), site.origin);
  return who;
}

/** What the page gets from `fetch(url)`: status and body, or the error it threw. */
function pageFetch(page, url) {
  return page.evaluate(async (u) => {
    try {
      const res = await fetch(u, { cache: 'no-store', signal: AbortSignal.timeout(5000) });
      return { ok: true, status: res.status, body: await res.json() };
    } catch (err) {
      return { ok: false, name: err.name, message: String(err.message) };
    }
  }, url);
}

/** GET /connect from Node (no Origin unless given). */
async function nodeConnect(server, origin, method = 'GET') {
  const headers = origin ? { origin } : {};
  if (method === 'OPTIONS') headers['access-control-request-method'] = 'GET';
  return fetch(`${server.baseUrl}/connect`, { method, headers, signal: AbortSignal.timeout(5000) });
}

/** Lines of the server's log written since `from` (a byte offset). */
function logSince(server, from) {
  return fs.readFileSync(server.logFile).subarray(from).toString('utf8');
}

function logSize(server) {
  try {
    return fs.statSync(server.logFile).size;
  } catch {
    return 0;
  }
}

/** Waits (bounded) until the server's log since `from` matches `re` `count` times. */
async function waitForLog(server, from, re, count, timeout = TIMEOUT.ui) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const n = (logSince(server, from).match(new RegExp(re.source, 'g')) || []).length;
    if (n >= count) return n;
    if (Date.now() > deadline) throw new Error(`expected ${count} log lines matching ${re} in ${server.logFile}, found ${n}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A WebSocket or WebTransport connection refused for its origin (a /connect refusal is `via="connect"`). */
const ORIGIN_REFUSED = /origin not allowed.*via="(ws|wt)"/;

/** The server's line (warn, or debug within a second of the last) for a `kind` ('ws' or 'wt') connection refused for `origin`. */
function refusedLine(kind, origin) {
  const esc = origin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`origin not allowed origin="${esc}" peer=\\S+ via="${kind}"`);
}

describe('a page on another origin', { timeout: 120_000 }, () => {
  let site;
  let browser;

  before(async () => {
    site = await startSite();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await site?.close();
  });

  describe('whose origin is allowed', () => {
    let server;
    let logFrom;
    const people = [];

    before(async () => {
      server = await JamServer.create({ extraArgs: ['--allowed-origins', site.origin], logName: 'origins-allowed.log' });
      logFrom = logSize(server);
      await server.start();
      assert.notEqual(site.origin, server.baseUrl, 'the page and the jam server are different origins');
    });

    after(async () => {
      for (const who of people) await who.context.close().catch(() => {});
      await server?.dispose();
    });

    test('GET and OPTIONS /connect name that origin in Access-Control-Allow-Origin, and no other', async () => {
      const get = await nodeConnect(server, site.origin);
      assert.equal(get.status, 200);
      assert.equal(get.headers.get('access-control-allow-origin'), site.origin);
      assert.match(get.headers.get('vary') || '', /\borigin\b/i);
      await get.body?.cancel();

      const preflight = await nodeConnect(server, site.origin, 'OPTIONS');
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-origin'), site.origin);
      await preflight.body?.cancel();

      // The jam server's own origin is not in the list: refused, and told why.
      const other = await nodeConnect(server, server.baseUrl);
      assert.equal(other.status, 403);
      assert.equal(other.headers.get('access-control-allow-origin'), server.baseUrl);
      assert.deepEqual(await other.json(), { error: 'origin_not_allowed' });
    });

    test('the page reads /connect across origins, and a WebTransport host and a WebSocket guest jam together', async () => {
      const ana = await openSitePage(browser, site);
      people.push(ana);
      const ben = await openSitePage(browser, site);
      people.push(ben);

      const got = await pageFetch(ana.page, `${server.baseUrl}/connect`);
      assert.equal(got.ok, true, `cross-origin fetch of /connect failed: ${got.name}: ${got.message}`);
      assert.equal(got.status, 200);
      assert.equal(got.body.webtransport.url, `https://127.0.0.1:${server.wtPort}/jam`);

      const connect = (page, transport) =>
        page.evaluate(
          async ({ baseUrl, transport }) => {
            const client = new window.JamClient({ baseUrl, transport, storage: null });
            window.client = client;
            window.__heard = [];
            client.on('event:broadcast', (data, env, channel) => window.__heard.push({ ...data, channel }));
            return client.connect();
          },
          { baseUrl: server.baseUrl, transport },
        );

      assert.equal(await connect(ana.page, 'webtransport'), 'webtransport', 'WebTransport opens from the other origin');
      assert.equal(await connect(ben.page, 'websocket'), 'websocket', 'WebSocket opens from the other origin');

      const roomCode = await ana.page.evaluate(async () => (await window.client.create({ name: 'Ana', instrument: 'piano' })).roomCode);
      assert.match(roomCode, /^[0-9A-Z]{6}$/);
      const joined = await ben.page.evaluate(
        async (code) => (await window.client.join({ roomCode: code, name: 'Ben', instrument: 'drums' })).roomCode,
        roomCode,
      );
      assert.equal(joined, roomCode);
      await ana.page.waitForFunction(() => window.client.room && window.client.room.participants.length === 2, null, { timeout: TIMEOUT.ui });

      // Ana's note goes out as a datagram and reaches Ben on his WebSocket; Ben's comes back.
      const sent = await ana.page.evaluate(() => window.client.broadcast('note', { type: 'on', note: 60, velocity: 100 }));
      assert.equal(sent, 'datagram');
      await ben.page.waitForFunction(() => window.__heard.some((d) => d.eventName === 'note'), null, { timeout: TIMEOUT.ui });
      const heardByBen = (await ben.page.evaluate(() => window.__heard)).find((d) => d.eventName === 'note');
      assert.deepEqual(heardByBen.payload, { type: 'on', note: 60, velocity: 100 });
      assert.equal(heardByBen.channel, 'websocket');

      await ben.page.evaluate(() => window.client.broadcast('note', { type: 'on', note: 36, velocity: 90 }));
      await ana.page.waitForFunction(() => window.__heard.some((d) => d.eventName === 'note'), null, { timeout: TIMEOUT.ui });
      const heardByAna = (await ana.page.evaluate(() => window.__heard)).find((d) => d.eventName === 'note');
      assert.deepEqual(heardByAna.payload, { type: 'on', note: 36, velocity: 90 });

      assert.deepEqual(ana.errors, []);
      assert.deepEqual(ben.errors, []);
      assert.doesNotMatch(logSince(server, logFrom), ORIGIN_REFUSED, 'the server refused nothing');
    });
  });

  describe('whose origin is not allowed', () => {
    let server;
    let logFrom;
    let info;
    let who;

    before(async () => {
      server = await JamServer.create({ extraArgs: ['--allowed-origins', 'https://jam.example.com'], logName: 'origins-refused.log' });
      logFrom = logSize(server);
      await server.start();
      // A native client (no Origin) reads /connect as ever: the certificate hash and the URLs.
      const res = await nodeConnect(server);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), null);
      info = await res.json();
      who = await openSitePage(browser, site);
    });

    after(async () => {
      await who?.context.close().catch(() => {});
      await server?.dispose();
    });

    test('/connect answers it 403 origin_not_allowed, readable by the page and nothing more', async () => {
      const res = await nodeConnect(server, site.origin);
      assert.equal(res.status, 403);
      assert.equal(res.headers.get('access-control-allow-origin'), site.origin);
      assert.deepEqual(await res.json(), { error: 'origin_not_allowed' });
      const allowed = await nodeConnect(server, 'https://jam.example.com');
      assert.equal(allowed.status, 200);
      assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://jam.example.com');
      await allowed.body?.cancel();

      // The page can read why, and gets neither the certificate hash nor the URLs.
      const got = await pageFetch(who.page, `${server.baseUrl}/connect`);
      assert.equal(got.ok, true, `the page reads the refusal: ${JSON.stringify(got)}`);
      assert.equal(got.status, 403);
      assert.deepEqual(got.body, { error: 'origin_not_allowed' });
      // The page's client says so in plain words.
      const err = await who.page.evaluate(async (base) => {
        const c = new window.JamClient({ baseUrl: base, storage: null });
        try {
          await c.connect();
          return null;
        } catch (e) {
          return { code: e.code, message: e.message };
        } finally {
          c.close();
        }
      }, server.baseUrl);
      assert.equal(err?.code, 'origin_not_allowed', JSON.stringify(err));
    });

    test("the page's WebSocket never opens: the upgrade is answered 403", async (t) => {
      const wsUrl = info.websocket.url;
      assert.match(wsUrl, /^ws:\/\/127\.0\.0\.1:\d+\/ws/);

      // A native client without Origin gets in on the same URL, so the URL is right.
      await new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrl);
        const timer = setTimeout(() => reject(new Error('native WebSocket did not open')), TIMEOUT.ui);
        ws.once('open', () => { clearTimeout(timer); ws.close(); resolve(); });
        ws.once('error', (err) => { clearTimeout(timer); reject(err); });
      });
      // The same from Node with the page's Origin: 403.
      const status = await new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrl, { origin: site.origin });
        const timer = setTimeout(() => reject(new Error('no answer to the upgrade')), TIMEOUT.ui);
        ws.once('unexpected-response', (req, res) => { clearTimeout(timer); res.resume(); req.destroy(); resolve(res.statusCode); });
        ws.once('open', () => { clearTimeout(timer); ws.close(); resolve('open'); });
        ws.once('error', () => {});
      });
      assert.equal(status, 403);

      const before = logSize(server);
      const socketError = new Promise((resolve) => {
        who.page.once('websocket', (ws) => ws.once('socketerror', resolve));
      });
      const result = await who.page.evaluate((url) => new Promise((resolve) => {
        const seen = [];
        const ws = new WebSocket(url);
        const timer = setTimeout(() => resolve({ seen, timedOut: true }), 10_000);
        ws.onopen = () => seen.push('open');
        ws.onmessage = () => seen.push('message');
        ws.onerror = () => seen.push('error');
        ws.onclose = (e) => { clearTimeout(timer); seen.push('close'); resolve({ seen, code: e.code, wasClean: e.wasClean }); };
      }), wsUrl);
      assert.deepEqual(result.seen, ['error', 'close'], `the page saw ${JSON.stringify(result)}`);
      assert.equal(result.code, 1006);
      // Chromium's own account of the failure (playwright's socketerror), bounded.
      const reason = await Promise.race([socketError, new Promise((r) => setTimeout(() => r(null), TIMEOUT.ui))]);
      t.diagnostic(`Chromium's reason: ${reason}`);
      assert.match(String(reason), /403/, `Chromium's reason: ${reason}`);
      // The server refused it for its origin.
      await waitForLog(server, before, refusedLine('ws', site.origin), 1);
    });

    test("the page's WebTransport session, with the right certificate hash, is refused", async (t) => {
      const before = logSize(server);
      const result = await who.page.evaluate(async ({ url, hash }) => {
        const bytes = new Uint8Array(hash.match(/../g).map((h) => parseInt(h, 16)));
        const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: bytes }] });
        wt.closed.catch(() => {});
        const timeout = new Promise((resolve) => setTimeout(() => resolve({ outcome: 'timeout' }), 10_000));
        const ready = wt.ready.then(
          () => ({ outcome: 'ready' }),
          (err) => ({ outcome: 'rejected', name: err && err.name, message: String(err && err.message) }),
        );
        const r = await Promise.race([ready, timeout]);
        try { wt.close(); } catch { /* never opened */ }
        return r;
      }, { url: info.webtransport.url, hash: info.webtransport.certificateHashes[0].value });
      t.diagnostic(`the page saw ${JSON.stringify(result)}`);
      assert.equal(result.outcome, 'rejected', `the page saw ${JSON.stringify(result)}`);
      // The refusal was the server's, for the origin (not a certificate or network failure).
      await waitForLog(server, before, refusedLine('wt', site.origin), 1);
      assert.deepEqual(who.errors, []);
    });
  });
});
