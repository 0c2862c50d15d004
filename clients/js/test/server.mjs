// server.mjs: the real jam-server for the package's tests, started on
// loopback port 0 (the port it bound is read from its "listening" log line),
// with sign-in on when asked (a fresh HS256 secret in a temporary file), and
// the test hook that drops a client's transport.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// The repository's other node tests stop the server the same way (node's own modules only).
import { ONE_ADDRESS_ARGS, stopProcess } from '../../../web-demo/e2e/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
/** $JAM_SERVER_BIN, else jam-server of the debug build (in $CARGO_TARGET_DIR when set, else target/). */
export const SERVER_BIN =
  process.env.JAM_SERVER_BIN ||
  path.join(path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target'), 'debug', 'jam-server');

/** Bounds every wait on the server. */
export const READY_MS = 30_000;

/**
 * Drops the transport underneath a client as a network fault would (the test
 * hook keyed by a registered symbol; not API).
 */
export function dropTransport(client) {
  client[Symbol.for('jam-client.dropTransport')]();
}

/** The real server as a child process on loopback, HTTP and WebTransport on port 0. */
export class JamServer {
  static async start(extraArgs = []) {
    if (!fs.existsSync(SERVER_BIN)) {
      throw new Error(`no server binary at ${SERVER_BIN}: run \`cargo build --bin jam-server\` or set JAM_SERVER_BIN`);
    }
    const proc = spawn(
      SERVER_BIN,
      ['--http-addr', '127.0.0.1:0', '--wt-addr', '127.0.0.1:0', '--ephemeral-cert', ...ONE_ADDRESS_ARGS, ...extraArgs],
      { env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const server = new JamServer(proc);
    await server._ready();
    return server;
  }

  /**
   * The server with sign-in on (docs/protocol.md §13): a fresh random HS256
   * secret written to a temporary file (mode 0600) and passed as
   * `--jwt-secret-file`. The secret is `server.secret`, the file
   * `server.secretFile`; `stop()` removes it.
   */
  static async startWithSecret(extraArgs = []) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-jwt-'));
    const secretFile = path.join(dir, 'jwt-secret');
    const secret = crypto.randomBytes(32).toString('base64url');
    fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
    let server;
    try {
      server = await JamServer.start(['--jwt-secret-file', secretFile, ...extraArgs]);
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    server.secret = secret;
    server.secretFile = secretFile;
    server._tempDir = dir;
    return server;
  }

  constructor(proc) {
    this.proc = proc;
    this.log = '';
    this.baseUrl = null;
    /** With sign-in on: the HS256 secret, and the file that holds it. */
    this.secret = null;
    this.secretFile = null;
    this._tempDir = null;
  }

  _ready() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`jam-server not listening within ${READY_MS} ms:\n${this.log}`)), READY_MS);
      const fail = (err) => {
        clearTimeout(timer);
        this.proc.kill('SIGKILL');
        reject(err);
      };
      const onData = (chunk) => {
        this.log += chunk.toString();
        // Kept short: only the start-up is of interest if a test fails.
        if (this.log.length > 100_000) this.log = this.log.slice(-50_000);
        const m = /listening http=(127\.0\.0\.1:\d+)/.exec(this.log.replace(/\x1b\[[0-9;]*m/g, ''));
        if (m && !this.baseUrl) {
          this.baseUrl = `http://${m[1]}`;
          clearTimeout(timer);
          resolve();
        }
      };
      this.proc.stdout.on('data', onData);
      this.proc.stderr.on('data', onData);
      this.proc.once('exit', (code, signal) => fail(new Error(`jam-server exited with ${code ?? signal}:\n${this.log}`)));
    });
  }

  async stop() {
    await stopProcess(this.proc);
    if (this._tempDir) fs.rmSync(this._tempDir, { recursive: true, force: true });
  }
}

/** Resolves with the arguments of the first `name` event that passes `pred`; rejects after `ms`. */
export function nextEvent(client, name, pred = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${name} event within ${ms} ms`));
    }, ms);
    const off = client.on(name, (...args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}
