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

/** Whether a redis-server answers PING on `port`. */
function redisAnswers(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/**
 * A real redis-server (the Debian package) on a free loopback port, nothing
 * written to disk, for tests of several nodes: `{ url, stop() }`.
 */
export async function startRedis() {
  const port = await freeTcpPort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 5000;
  while (!(await redisAnswers(port))) {
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error('redis-server did not answer within 5 s (is the Debian package redis-server installed?)');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url: `redis://127.0.0.1:${port}/`, stop: () => proc.kill('SIGKILL') };
}

/**
 * One address in front of several nodes, as a load balancer: every GET (the
 * page, its modules, `/connect`) goes to the first node of `nodes` whose
 * `alive` is not false and that answers. `{ url, close() }`.
 */
export async function frontDoor(nodes) {
  const { createServer } = await import('node:http');
  const server = createServer(async (req, res) => {
    for (const node of nodes) {
      if (node.alive === false) continue;
      try {
        const answer = await fetch(node.baseUrl + req.url, { signal: AbortSignal.timeout(1000) });
        const body = Buffer.from(await answer.arrayBuffer());
        const headers = { 'cache-control': 'no-store' };
        const type = answer.headers.get('content-type');
        if (type) headers['content-type'] = type;
        res.writeHead(answer.status, headers);
        res.end(body);
        return;
      } catch {
        // that node is down: the next one
      }
    }
    res.writeHead(503);
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}
