// harness.mjs: the real jam-server as a child process on free ports, and small
// bounded waits for socket.io-client events. Every wait has a timeout.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR || path.join(REPO, 'target');
export const SERVER_BIN = process.env.JAM_SERVER_BIN || path.join(targetDir, 'debug', 'jam-server');

/** The bound on every single wait, in ms. */
export const T = 5_000;

/** A free TCP port on 127.0.0.1. */
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

/** Starts jam-server with `args` (more flags) and waits for /healthz. */
export async function startServer(args = []) {
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(`no server binary at ${SERVER_BIN}: run \`cargo build --bin jam-server\` or set JAM_SERVER_BIN`);
  }
  const port = await freeTcpPort();
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-sio-'));
  const logFile = path.join(logDir, 'server.log');
  const log = fs.openSync(logFile, 'a');
  const proc = spawn(SERVER_BIN, [
    '--http-addr', `127.0.0.1:${port}`,
    '--wt-addr', '127.0.0.1:0',
    '--ephemeral-cert',
    ...args,
  ], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info,jam_server=debug' },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  let exited = null;
  proc.once('exit', (code, signal) => { exited = `exited with ${code ?? signal}`; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`jam-server ${exited} before it was ready; see ${logFile}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`jam-server not ready in 30 s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    logFile,
    proc,
    /** Whether the process is still running (it must never crash on hostile input). */
    alive: () => exited === null,
    async stop() {
      if (exited) throw new Error(`jam-server ${exited} during the test; see ${logFile}`);
      const gone = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** The sockets a test opened, closed at its end. */
export function sockets() {
  const open = [];
  return {
    /** `io(url, opts)`, exactly as an app calls it. */
    connect(url, opts) {
      const s = io(url, opts);
      open.push(s);
      return s;
    },
    closeAll() {
      for (const s of open) s.disconnect();
    },
  };
}

/** Runs `body(s)` with the sockets `s` of one test, and closes them all at its end. */
export async function withSockets(body) {
  const s = sockets();
  try {
    return await body(s);
  } finally {
    s.closeAll();
  }
}

/** The arguments of the next `event` on `socket`, or a rejection after `ms`. */
export function next(socket, event, ms = T) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const on = (...args) => {
      clearTimeout(timer);
      socket.off(event, on);
      resolve(args);
    };
    socket.on(event, on);
  });
}

/** The data of the next `event` (its first argument). */
export async function nextData(socket, event, ms = T) {
  const [data] = await next(socket, event, ms);
  return data;
}

/** Resolves once `socket` is connected. */
export async function connected(socket, ms = T) {
  if (socket.connected) return;
  await Promise.race([
    next(socket, 'connect', ms),
    next(socket, 'connect_error', ms).then(([e]) => { throw new Error(`connect_error: ${e.message}`); }),
  ]);
}

/** Every event `socket` receives, in order, as [name, ...args]. */
export function record(socket) {
  const seen = [];
  socket.onAny((...args) => seen.push(args));
  return seen;
}

/** Waits until `pred()` holds, checking on every event of `socket`; bounded by `ms`. */
export function until(socket, pred, ms = T) {
  return new Promise((resolve, reject) => {
    if (pred()) { resolve(); return; }
    const timer = setTimeout(() => { socket.offAny(on); reject(new Error(`condition not met within ${ms} ms`)); }, ms);
    const on = () => {
      if (pred()) { clearTimeout(timer); socket.offAny(on); resolve(); }
    };
    socket.onAny(on);
  });
}

/**
 * Ana opens a socket of `s` (with `opts`) and creates a room, with the seed-era calls
 * (`emit`, then the answer event): the socket and the `session:created` data.
 */
export async function createRoom(s, url, { opts, data = { name: 'Ana', instrument: 'piano' } } = {}) {
  const a = s.connect(url, opts);
  a.emit('session:create', data);
  return [a, await nextData(a, 'session:created')];
}

/**
 * Ana creates a room (`createRoom`) and Ben joins it from a second socket; resolves once
 * Ana has heard him arrive. `join(roomCode)` is Ben's `session:join` data. Returns the
 * sockets `a` and `b`, the `room` Ana created, Ben's `joined` data and the arguments of
 * Ana's `session:user-joined` (`arrived`).
 */
export async function roomOfTwo(s, url, { opts, join = (roomCode) => ({ roomCode, name: 'Ben' }) } = {}) {
  const [a, room] = await createRoom(s, url, { opts });
  const b = s.connect(url, opts);
  const arrived = next(a, 'session:user-joined');
  b.emit('session:join', join(room.roomCode));
  const joined = await nextData(b, 'session:joined');
  return { a, b, room, roomCode: room.roomCode, joined, arrived: await arrived };
}
