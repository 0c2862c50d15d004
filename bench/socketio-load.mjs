#!/usr/bin/env node
// socketio-load.mjs: load on the Socket.IO endpoint with the real socket.io-client.
// ROOMS rooms of PER_ROOM clients; every client sends `event:broadcast` at RATE Hz
// (Poisson, open loop: latency counts from each event's intended send time, so a
// generator that falls behind shows as latency). One process, one clock: latency is
// one-way, sender -> server -> each receiver.
//
//   cd tests/socketio && npm ci            # socket.io-client lives there
//   cargo build --release --bin jam-server
//   taskset -c 0 node bench/socketio-load.mjs --rooms 1 --per-room 8 --rate 40 --seconds 10
//
// Options: --rooms N --per-room M --rate HZ --seconds S --warmup S
//          --transport websocket|polling|default (default: websocket only)
//          --url http://HOST:PORT (a running server; else it starts
//          target/release/jam-server itself, pinned to CPU 1 when taskset exists)
//          --json (one JSON line instead of the table)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const require = createRequire(path.join(repo, 'tests', 'socketio', 'package.json'));
const { io } = require('socket.io-client');

const opt = { rooms: 1, perRoom: 8, rate: 40, seconds: 10, warmup: 2, transport: 'websocket', url: null, json: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => argv[++i];
  if (a === '--rooms') opt.rooms = Number(v());
  else if (a === '--per-room') opt.perRoom = Number(v());
  else if (a === '--rate') opt.rate = Number(v());
  else if (a === '--seconds') opt.seconds = Number(v());
  else if (a === '--warmup') opt.warmup = Number(v());
  else if (a === '--transport') opt.transport = v();
  else if (a === '--url') opt.url = v();
  else if (a === '--json') opt.json = true;
  else { console.error(`unknown option ${a}`); process.exit(2); }
}
const transports = { websocket: ['websocket'], polling: ['polling'], default: undefined }[opt.transport];

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function cpuTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
}

let server = null;
let url = opt.url;
if (!url) {
  const bin = process.env.JAM_SERVER_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(repo, 'target'), 'release', 'jam-server');
  const port = await freePort();
  const args = ['--http-addr', `127.0.0.1:${port}`, '--wt-addr', '127.0.0.1:0', '--ephemeral-cert',
    '--max-connections-per-address', '100000', '--max-http-connections-per-address', '100000',
    '--room-create-burst', '1000000',
    '--room-creates-per-minute', '1000000', '--max-away-seats-per-address', '1000000', '--rate-limit', '100000', '--rate-burst', '100000'];
  const pinned = spawnSync('taskset', ['-V']).status === 0;
  if (!fs.existsSync(bin)) throw new Error(`no server binary at ${bin}: cargo build --release --bin jam-server, or set JAM_SERVER_BIN`);
  server = pinned ? spawn('taskset', ['-c', '1', bin, ...args], { stdio: 'ignore' }) : spawn(bin, args, { stdio: 'ignore' });
  let exited = null;
  server.once('exit', (code) => { exited = code; });
  process.on('exit', () => server.kill('SIGTERM'));
  url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${url}/healthz`)).ok) break; } catch { /* not yet */ }
    if (exited !== null) throw new Error(`${bin} exited with ${exited}`);
    if (i > 300) throw new Error('server not ready in 15 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const timeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms))]);
const clients = [];
const latencies = [];
let measuring = false;
let sent = 0;
let delivered = 0;
let errors = 0;

for (let r = 0; r < opt.rooms; r++) {
  let roomCode = null;
  for (let m = 0; m < opt.perRoom; m++) {
    const s = io(url, { transports, forceNew: true });
    s.on('error', () => { errors += 1; });
    s.on('event:broadcast', ({ payload }) => {
      if (!payload.m) return;
      delivered += 1;
      latencies.push(performance.now() - payload.t);
    });
    const answer = roomCode
      ? await timeout(s.emitWithAck('session:join', { roomCode, name: `p${m}` }), 10_000, 'join')
      : await timeout(s.emitWithAck('session:create', { name: `p${m}` }), 10_000, 'create');
    if (answer.event === 'error') throw new Error(answer.data.message);
    roomCode = answer.data.roomCode;
    clients.push({ s, roomCode });
  }
}

// Open loop: each client's next intended send time is drawn ahead (Poisson).
const start = performance.now();
const warmEnd = start + opt.warmup * 1000;
const end = warmEnd + opt.seconds * 1000;
let behind = 0;
for (const c of clients) c.next = start + Math.random() * (1000 / opt.rate);
let cpu0 = null;
await new Promise((resolve) => {
  const tick = () => {
    const now = performance.now();
    if (!measuring && now >= warmEnd) {
      measuring = true;
      latencies.length = 0; delivered = 0; sent = 0;
      if (server) cpu0 = cpuTicks(server.pid);
    }
    if (now >= end) { resolve(); return; }
    for (const c of clients) {
      while (c.next <= now && c.next < end) {
        behind = Math.max(behind, now - c.next);
        const m = measuring && c.next >= warmEnd;
        c.s.emit('event:broadcast', { roomCode: c.roomCode, eventName: 'note', payload: { t: c.next, m } });
        if (m) sent += 1;
        c.next += -Math.log(1 - Math.random()) * (1000 / opt.rate);
      }
    }
    setImmediate(tick);
  };
  tick();
});
// Let the last events land.
await new Promise((r) => setTimeout(r, 500));
const cpu = server ? (cpuTicks(server.pid) - cpu0) / 100 : null; // seconds (CLK_TCK 100)

latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] * 1000) : null;
const expected = sent * (opt.perRoom - 1);
const result = {
  transport: opt.transport, rooms: opt.rooms, perRoom: opt.perRoom, rate: opt.rate, seconds: opt.seconds,
  deliveriesPerSecond: Math.round(delivered / opt.seconds),
  delivered: expected ? delivered / expected : null,
  p50us: pct(0.5), p99us: pct(0.99), p999us: pct(0.999), maxUs: pct(1),
  serverUsPerDelivery: cpu !== null && delivered ? Math.round((cpu * 1e6 / delivered) * 10) / 10 : null,
  generatorBehindMs: Math.round(behind * 10) / 10,
  errors,
};
for (const c of clients) c.s.disconnect();
if (server) server.kill('SIGTERM');
if (opt.json) console.log(JSON.stringify(result));
else {
  console.log(`socket.io ${result.transport}: ${opt.rooms} rooms x ${opt.perRoom} x ${opt.rate} Hz, ${opt.seconds} s`);
  console.log(`  deliveries/s ${result.deliveriesPerSecond}, delivered ${(100 * result.delivered).toFixed(3)} %`);
  console.log(`  latency p50 ${result.p50us} us, p99 ${result.p99us} us, p99.9 ${result.p999us} us, max ${result.maxUs} us`);
  console.log(`  server ${result.serverUsPerDelivery} us CPU per delivery; generator at most ${result.generatorBehindMs} ms behind; ${errors} errors`);
}
process.exit(0);
