// harness.mjs: the real jam-server as a child process on free ports, and small
// bounded waits for socket.io-client events. Every wait has a timeout.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
// The web demo's browser tests start the server the same way; that module uses
// node's own modules only, so this package can import it by its path.
import { ONE_ADDRESS_ARGS, REPO, freeTcpPort, spawnServer, stopProcess } from '../../web-demo/e2e/server.mjs';

export { REPO };

/** The bound on every single wait, in ms. */
export const T = 5_000;

/** Starts jam-server with `args` (more flags) and waits for /healthz. */
export async function startServer(args = []) {
  const port = await freeTcpPort();
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-sio-'));
  const logFile = path.join(logDir, 'server.log');
  const url = `http://127.0.0.1:${port}`;
  const { proc, exited } = await spawnServer([
    '--http-addr', `127.0.0.1:${port}`,
    '--wt-addr', '127.0.0.1:0',
    '--ephemeral-cert',
    ...ONE_ADDRESS_ARGS,
    ...args,
  ], { baseUrl: url, logFile });
  return {
    url,
    logFile,
    proc,
    /** Whether the process is still running (it must never crash on hostile input). */
    alive: () => exited() === null,
    async stop() {
      if (exited()) throw new Error(`jam-server ${exited()} during the test; see ${logFile}`);
      await stopProcess(proc);
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

/**
 * Runs `body(srv, s)` against a server started with `args` (`startServer`) and the
 * sockets `s` of the test; checks the server is still running at the end, then closes
 * the sockets and stops it.
 */
export async function withServer(args, body) {
  const srv = await startServer(args);
  const s = sockets();
  try {
    await body(srv, s);
    assert.ok(srv.alive(), 'the server is still running');
  } finally {
    s.closeAll();
    await srv.stop();
  }
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
 * Ana opens a socket of `s` (with `opts`) and creates a room, with the plain calls
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
