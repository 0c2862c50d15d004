// harness.mjs: helpers for the browser tests. Starts the real jam-server on
// free ports, launches Debian's Chromium through playwright-core, and drives
// the JamSession page the way a person would.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
export const SERVER_BIN = process.env.JAM_SERVER_BIN || path.join(REPO, 'target', 'debug', 'jam-server');
export const ARTIFACTS = path.join(REPO, 'target', 'e2e');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** Every wait in the tests is bounded by one of these. */
export const TIMEOUT = {
  ready: 30_000,
  ui: 10_000,
  reconnect: 30_000,
};

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A free UDP port on the dual-stack wildcard (bind 0, read it, close). */
export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: 'udp6', ipv6Only: false });
    sock.once('error', reject);
    sock.bind(0, '::', () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

/** The real server as a child process, restartable on the same ports and certificate. */
export class JamServer {
  constructor({ httpPort, wtPort, certDir, logFile, extraArgs = [] }) {
    this.extraArgs = extraArgs;
    this.httpPort = httpPort;
    this.wtPort = wtPort;
    this.certDir = certDir;
    this.logFile = logFile;
    this.proc = null;
    this.baseUrl = `http://127.0.0.1:${httpPort}`;
  }

  /** `extraArgs`: more server flags, e.g. `['--max-room-size', '2']`. */
  static async create({ extraArgs = [], logName = 'server.log' } = {}) {
    const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-e2e-cert-'));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    return new JamServer({
      httpPort: await freeTcpPort(),
      wtPort: await freeUdpPort(),
      certDir,
      logFile: path.join(ARTIFACTS, logName),
      extraArgs,
    });
  }

  async start() {
    if (!fs.existsSync(SERVER_BIN)) {
      throw new Error(`no server binary at ${SERVER_BIN}: run \`cargo build --bin jam-server\` or set JAM_SERVER_BIN`);
    }
    const log = fs.openSync(this.logFile, 'a');
    fs.writeSync(log, `\n=== ${new Date().toISOString()} starting ${SERVER_BIN}\n`);
    const args = [
      '--http-addr', `127.0.0.1:${this.httpPort}`,
      '--wt-addr', `[::]:${this.wtPort}`,
      '--cert-dir', this.certDir,
      ...this.extraArgs,
    ];
    this.proc = spawn(SERVER_BIN, args, {
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info,jam_server=debug' },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    const proc = this.proc;
    let exited = null;
    proc.once('exit', (code, signal) => {
      exited = `exited with ${code ?? signal}`;
    });

    const deadline = Date.now() + TIMEOUT.ready;
    for (;;) {
      if (exited) throw new Error(`jam-server ${exited} before it was ready; see ${this.logFile}`);
      try {
        const res = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.text()).trim();
        if (res.status === 200 && body === 'ok') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`jam-server not ready within ${TIMEOUT.ready} ms; see ${this.logFile}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop() {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Stops the server and removes its certificate directory. */
  async dispose() {
    await this.stop();
    fs.rmSync(this.certDir, { recursive: true, force: true });
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
 */
export async function openPlayer(browser, server, { query = '/', initScript, viewport, origin = server.baseUrl } = {}) {
  const context = await browser.newContext({ viewport: viewport || { width: 1200, height: 820 } });
  context.setDefaultTimeout(TIMEOUT.ui);
  const page = await context.newPage();
  const player = { context, page, errors: [], console: [] };
  page.on('pageerror', (err) => player.errors.push(err));
  page.on('console', (msg) => player.console.push(`${msg.type()}: ${msg.text()}`));
  if (initScript) await page.addInitScript(initScript);
  await page.goto(origin + query);
  await page.waitForFunction(() => window.jam && window.jam.client.state === 'connected', null, { timeout: TIMEOUT.ui });
  return player;
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

/** The participant list as the page shows it. */
export function participants(page) {
  return page.$$eval('[data-testid="participants"] [data-testid="participant"]', (els) =>
    els.map((el) => ({
      id: el.dataset.userId,
      name: el.dataset.name,
      you: el.dataset.you === 'true',
      host: el.dataset.host === 'true',
      notes: Number(el.dataset.notes),
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

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
