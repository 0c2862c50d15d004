// harness.mjs: helpers for the browser tests. Starts the real jam-server on
// free ports, launches Debian's Chromium through playwright-core, puts a TCP
// relay that can fail like a network between a page and the server, and
// drives the JamSession page the way a person would.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { ONE_ADDRESS_ARGS, REPO, SERVER_BIN, freeTcpPort, freeUdpPort, spawnServer, stopProcess } from './server.mjs';

export { REPO, SERVER_BIN, freeTcpPort, freeUdpPort };
export const ARTIFACTS = path.join(REPO, 'target', 'e2e');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** Every wait in the tests is bounded by one of these. */
export const TIMEOUT = {
  ready: 30_000,
  ui: 10_000,
  reconnect: 30_000,
};

/** The real server as a child process, restartable on the same ports and certificate. */
export class JamServer {
  constructor({ httpPort, wtPort, certDir, logFile, extraArgs = [], store = true }) {
    this.extraArgs = extraArgs;
    this.store = store;
    this.httpPort = httpPort;
    this.wtPort = wtPort;
    this.certDir = certDir;
    this.logFile = logFile;
    this.proc = null;
    this.baseUrl = `http://127.0.0.1:${httpPort}`;
  }

  /**
   * `extraArgs`: more server flags, e.g. `['--max-room-size', '2']`. `store`
   * false: no room store (rooms in memory, as a server with `--ephemeral-cert`
   * keeps them), so a restart brings rooms back only from the seats' tokens
   * (docs/protocol.md §6, Restart); the resume key is still kept on disk.
   */
  static async create({ extraArgs = [], logName = 'server.log', store = true } = {}) {
    const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-e2e-cert-'));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    return new JamServer({
      httpPort: await freeTcpPort(),
      wtPort: await freeUdpPort(),
      certDir,
      logFile: path.join(ARTIFACTS, logName),
      extraArgs,
      store,
    });
  }

  async start() {
    const args = [
      '--http-addr', `127.0.0.1:${this.httpPort}`,
      '--wt-addr', `[::]:${this.wtPort}`,
      '--cert-dir', this.certDir,
      ...(this.store ? ['--data-dir', this.dataDir] : ['--ephemeral-cert', '--resume-key-file', this.resumeKeyFile]),
      ...ONE_ADDRESS_ARGS,
      ...this.extraArgs,
    ];
    ({ proc: this.proc } = await spawnServer(args, { baseUrl: this.baseUrl, logFile: this.logFile, readyMs: TIMEOUT.ready }));
  }

  async stop() {
    const proc = this.proc;
    this.proc = null;
    if (proc) await stopProcess(proc);
  }

  /** Stops the server and removes its certificate directory. */
  async dispose() {
    await this.stop();
    fs.rmSync(this.certDir, { recursive: true, force: true });
  }

  /** The folder of the room store (its database file). */
  get dataDir() {
    return path.join(this.certDir, 'data');
  }

  /** The file that keeps the key signing resume tokens (beside the certificate). */
  get resumeKeyFile() {
    return path.join(this.certDir, 'resume.key');
  }
}

/**
 * A TCP relay to a port of the server, for links that fail the way networks
 * do. `goDark()` stops every byte in both directions on the connections open
 * now and on new ones, and closes nothing (Wi-Fi out of range, a dead NAT
 * entry); `cut()` closes every connection and refuses new ones (the network is
 * gone, and both ends notice); `restore()` lets new connections through again
 * (connections that went dark stay dark, as a broken path would).
 */
export class TcpRelay {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.mode = 'open';
    this.pairs = new Set();
    this.server = net.createServer((client) => this._accept(client));
  }

  static async start(targetPort) {
    const relay = new TcpRelay(targetPort);
    await new Promise((resolve, reject) => {
      relay.server.once('error', reject);
      relay.server.listen(0, '127.0.0.1', resolve);
    });
    relay.port = relay.server.address().port;
    return relay;
  }

  _accept(client) {
    client.on('error', () => {});
    if (this.mode === 'cut') {
      client.destroy();
      return;
    }
    const pair = { client, upstream: null, dark: this.mode === 'dark' };
    this.pairs.add(pair);
    client.on('close', () => {
      this.pairs.delete(pair);
      // A dark path delivers no close either.
      if (pair.upstream && !pair.dark) pair.upstream.destroy();
    });
    if (pair.dark) return; // accepted, and never answered
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('close', () => {
      if (!pair.dark) client.destroy();
    });
    client.on('data', (chunk) => {
      if (!pair.dark) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.dark) client.write(chunk);
    });
  }

  goDark() {
    this.mode = 'dark';
    for (const pair of this.pairs) pair.dark = true;
  }

  cut() {
    this.mode = 'cut';
    for (const pair of this.pairs) {
      pair.client.destroy();
      if (pair.upstream) pair.upstream.destroy();
    }
    this.pairs.clear();
  }

  restore() {
    this.mode = 'open';
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * A TCP relay to a port of the server that adds delay and jitter: every chunk
 * from the server to the client waits a random time between `downMinMs` and
 * `downMaxMs` (and from the client to the server between 0 and `upMaxMs`),
 * never less than the chunk before it, so bytes keep their order as on a real
 * path whose queues fill and drain. Point a page's WebSocket at it with
 * `rewriteConnect`.
 */
export class JitterRelay {
  constructor(targetPort, { downMinMs, downMaxMs, upMaxMs }) {
    this.targetPort = targetPort;
    this.downMinMs = downMinMs;
    this.downMaxMs = downMaxMs;
    this.upMaxMs = upMaxMs;
    this.sockets = new Set();
    /** chunks relayed server -> client, and how long each waited (ms) */
    this.delays = [];
    this.server = net.createServer((client) => this._accept(client));
  }

  static async start(targetPort, { downMinMs = 0, downMaxMs = 30, upMaxMs = 0 } = {}) {
    const relay = new JitterRelay(targetPort, { downMinMs, downMaxMs, upMaxMs });
    await new Promise((resolve, reject) => {
      relay.server.once('error', reject);
      relay.server.listen(0, '127.0.0.1', resolve);
    });
    relay.port = relay.server.address().port;
    return relay;
  }

  /** A one-way pipe that delays each chunk, in order. */
  _pipe(from, to, minMs, maxMs, record) {
    const queue = [];
    let timer = null;
    let lastDue = 0;
    const drain = () => {
      timer = null;
      const now = performance.now();
      while (queue.length && queue[0].due <= now + 0.5) {
        const { chunk } = queue.shift();
        if (!to.destroyed) to.write(chunk);
      }
      if (queue.length) timer = setTimeout(drain, Math.max(0, queue[0].due - performance.now()));
    };
    from.on('data', (chunk) => {
      const now = performance.now();
      const due = Math.max(lastDue, now + minMs + Math.random() * (maxMs - minMs));
      lastDue = due;
      if (record) {
        this.delays.push(due - now);
        if (this.delays.length > 10_000) this.delays.shift();
      }
      queue.push({ chunk, due });
      if (!timer) timer = setTimeout(drain, Math.max(0, queue[0].due - now));
    });
  }

  _accept(client) {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      s.on('error', () => {});
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    }
    this._pipe(client, upstream, 0, this.upMaxMs, false);
    this._pipe(upstream, client, this.downMinMs, this.downMaxMs, true);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  async close() {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Never --disable-quic: WebTransport runs on QUIC.
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * One person with one page in a browser context of their own (own storage).
 * `query` is appended to the server's base URL ("/?room=X&transport=websocket").
 * `rewriteConnect(info)` changes what the page gets from `GET /connect` (e.g.
 * a WebSocket URL through a `TcpRelay`).
 */
export async function openPlayer(browser, server, { query = '/', initScript, viewport, origin = server.baseUrl, rewriteConnect } = {}) {
  const context = await browser.newContext({ viewport: viewport || { width: 1200, height: 820 } });
  context.setDefaultTimeout(TIMEOUT.ui);
  if (rewriteConnect) {
    // `/connect`, and `/connect?room=CODE` when the client looks its room up.
    await context.route((url) => url.pathname === '/connect', async (route) => {
      let res;
      try {
        res = await route.fetch();
      } catch {
        // The server is down (a restart): the page sees what it would without the route.
        await route.abort('connectionrefused').catch(() => {});
        return;
      }
      await route.fulfill({ response: res, json: rewriteConnect(await res.json()) }).catch(() => {});
    });
  }
  const page = await context.newPage();
  const player = { context, page, errors: [], console: [] };
  page.on('pageerror', (err) => player.errors.push(err));
  page.on('console', (msg) => player.console.push(`${msg.type()}: ${msg.text()}`));
  if (initScript) await page.addInitScript(initScript);
  await page.goto(origin + query);
  await page.waitForFunction(() => window.jam && window.jam.client.state === 'connected', null, { timeout: TIMEOUT.ui });
  return player;
}

/**
 * What a `describe` block of browser tests plays on, opened by its `before` hook and
 * closed by its `after` hook (call this in the block): `server`, a started `JamServer`
 * (`extraArgs`, `logName`, `store` as for `JamServer.create`); `relay`, what `relay(server)`
 * resolves to when given (a `TcpRelay` or `JitterRelay`); `browser`, Chromium.
 * `player(opts)` opens a page (`openPlayer`); it and every other entry of `players`
 * (anything with a `context`) is closed at the end.
 */
export function useStage({ extraArgs = [], logName, relay, store = true } = {}) {
  const stage = {
    server: null,
    relay: null,
    browser: null,
    players: [],
    async player(opts) {
      const p = await openPlayer(stage.browser, stage.server, opts);
      stage.players.push(p);
      return p;
    },
  };
  before(async () => {
    stage.server = await JamServer.create({ extraArgs, logName, store });
    await stage.server.start();
    if (relay) stage.relay = await relay(stage.server);
    stage.browser = await launchBrowser();
  });
  after(async () => {
    for (const p of stage.players) await p.context.close().catch(() => {});
    if (stage.browser) await stage.browser.close();
    if (stage.relay) await stage.relay.close();
    if (stage.server) await stage.server.dispose();
  });
  return stage;
}

/** The WebSocket URL of the server through `relay` (a `TcpRelay` or `JitterRelay`). */
export function relayWsUrl(relay) {
  return `ws://127.0.0.1:${relay.port}/ws`;
}

/** For `openPlayer`'s `rewriteConnect`: the page's WebSocket goes through `relay`. */
export function throughRelay(relay) {
  return (info) => ({ ...info, websocket: { url: relayWsUrl(relay) } });
}

export async function transportOf(page) {
  return page.getByTestId('transport').getAttribute('data-transport');
}

export async function pickInstrument(page, instrument) {
  await page.getByTestId(`instrument-${instrument}`).check();
}

/** Creates a session from the lobby; returns the room code shown. */
export async function createSession(page, { name, instrument = 'piano' }) {
  await page.getByTestId('name-input').fill(name);
  await pickInstrument(page, instrument);
  await page.getByTestId('create-button').click();
  await page.getByTestId('session').waitFor({ state: 'visible' });
  const code = (await page.getByTestId('room-code').textContent()).trim();
  if (!/^[0-9A-Z]{6}$/.test(code)) throw new Error(`unexpected room code ${JSON.stringify(code)}`);
  return code;
}

/** Fills the lobby's join form (the room code may already be there from a share link). */
export async function submitJoin(page, { name, instrument = 'piano', roomCode }) {
  await page.getByTestId('name-input').fill(name);
  await pickInstrument(page, instrument);
  if (roomCode !== undefined) await page.getByTestId('room-code-input').fill(roomCode);
  await page.getByTestId('join-button').click();
}

export async function joinSession(page, opts) {
  await submitJoin(page, opts);
  await page.getByTestId('session').waitFor({ state: 'visible' });
}

/** Leaves the session the way a person does: Leave, then the confirmation. */
export async function leaveSession(page) {
  await page.getByTestId('leave-button').click();
  await page.getByTestId('leave-confirm').click();
  await page.getByTestId('lobby').waitFor();
}

/** Resolves after the page has drawn two more frames (a resize or a change has been laid out). */
export function settle(page) {
  return page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
}

/** The participant list as the page shows it. */
export function participants(page) {
  return page.$$eval('[data-testid="participants"] [data-testid="participant"]', (els) =>
    els.map((el) => ({
      id: el.dataset.userId,
      name: el.dataset.name,
      you: el.dataset.you === 'true',
      host: el.dataset.host === 'true',
      notes: Number(el.dataset.notes),
      status: el.dataset.status,
      hue: el.style.getPropertyValue('--hue'),
      text: el.textContent,
    })),
  );
}

/** Waits until the page lists exactly these names (any order). */
export async function waitForNames(page, names, timeout = TIMEOUT.ui) {
  const want = [...names].sort();
  try {
    await page.waitForFunction(
      (w) => {
        const got = [...document.querySelectorAll('[data-testid="participants"] [data-testid="participant"]')]
          .map((el) => el.dataset.name)
          .sort();
        return JSON.stringify(got) === JSON.stringify(w);
      },
      want,
      { timeout },
    );
  } catch (err) {
    const got = (await participants(page)).map((p) => p.name);
    throw new Error(`expected participants ${JSON.stringify(want)}, page shows ${JSON.stringify(got)}: ${err.message}`);
  }
}

export async function remoteNoteCount(page) {
  return Number(await page.getByTestId('remote-note-count').textContent());
}

/** Waits until the page has heard at least `n` remote notes. */
export async function waitForRemoteNotes(page, n, timeout = TIMEOUT.ui) {
  try {
    await page.waitForFunction(
      (want) => Number(document.querySelector('[data-testid="remote-note-count"]').textContent) >= want,
      n,
      { timeout },
    );
  } catch (err) {
    throw new Error(`expected at least ${n} remote notes, page counted ${await remoteNoteCount(page)}: ${err.message}`);
  }
}

/** Waits until the page shows the participant called `name` with `status` ('active' or 'away'). */
export async function waitForStatus(page, name, status, timeout = TIMEOUT.ui) {
  await page.locator(`[data-testid="participant"][data-name="${name}"][data-status="${status}"]`).waitFor({ timeout });
}

/** Who the page lists, as `name -> { id, hue }`, to compare before and after a reconnect. */
export async function identities(page) {
  const out = {};
  for (const p of await participants(page)) out[p.name] = { id: p.id, hue: p.hue };
  return out;
}

export function stats(page) {
  return page.evaluate(() => ({ ...window.jam.client.stats }));
}

/** Records every `note` broadcast the page receives into `window.__notes`. */
export function recordNotes(page) {
  return page.evaluate(() => {
    window.__notes = [];
    window.jam.client.on('event:broadcast', (data, env, channel) => {
      if (data.eventName === 'note') window.__notes.push({ ...data, channel });
    });
  });
}

export function recordedNotes(page) {
  return page.evaluate(() => window.__notes || []);
}

/** Writes a screenshot to target/e2e/ (`fullPage` false: what fits the viewport, as a phone shows it). */
export async function screenshot(page, name, { fullPage = true } = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage });
  return file;
}
