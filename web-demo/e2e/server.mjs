// server.mjs: the real jam-server as a child process, for any node test: where
// the binary is, free ports, starting it with its output in a log file and
// waiting for /healthz, stopping it. Node's own modules only, so the Socket.IO
// tests (tests/socketio/harness.mjs, a package of their own without
// playwright-core) import it by its relative path.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
/** $JAM_SERVER_BIN, else the debug build where cargo puts it ($CARGO_TARGET_DIR or target/). */
export const SERVER_BIN = process.env.JAM_SERVER_BIN
  || path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'debug', 'jam-server');

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

/**
 * Every player of a test comes from 127.0.0.1: these flags lift the per-address room
 * budgets (creations, away seats) that would otherwise treat a test run as one busy
 * address.
 */
export const ONE_ADDRESS_ARGS = Object.freeze([
  '--room-create-burst', '1000000',
  '--room-creates-per-minute', '1000000',
  '--max-away-seats-per-address', '1000000',
]);

/**
 * Starts SERVER_BIN with `args`, its output appended to `logFile`, and resolves
 * once `${baseUrl}/healthz` answers 200 "ok"; rejects (and kills it) if it
 * exits first or is not ready within `readyMs`. Returns `{ proc, exited }`:
 * `exited()` is null while it runs, else how it ended.
 */
export async function spawnServer(args, { baseUrl, logFile, readyMs = 30_000 }) {
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(`no server binary at ${SERVER_BIN}: run \`cargo build --bin jam-server\` or set JAM_SERVER_BIN`);
  }
  const log = fs.openSync(logFile, 'a');
  fs.writeSync(log, `\n=== ${new Date().toISOString()} starting ${SERVER_BIN}\n`);
  const proc = spawn(SERVER_BIN, args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info,jam_server=debug' },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  let exited = null;
  proc.once('exit', (code, signal) => {
    exited = `exited with ${code ?? signal}`;
  });
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (exited) throw new Error(`jam-server ${exited} before it was ready; see ${logFile}`);
    try {
      const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.text()).trim();
      if (res.status === 200 && body === 'ok') return { proc, exited: () => exited };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`jam-server not ready within ${readyMs} ms; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Ends `proc` with SIGTERM (SIGKILL after 5 s) and resolves once it has exited. */
export async function stopProcess(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}
