// timing.test.mjs: the room clock, latency in presence and the shared tempo
// (docs/protocol.md §7 to §9) in jam-client.js (clients/js/), in Node, no browser.
//
// First the arithmetic alone: the clock estimator and the tempo rules, with
// the Rust client's own test numbers (crates/jam-client/src/clock.rs,
// crates/jam-protocol/src/tempo.rs), and the tempo timeline. Then the client
// against a scripted fake server: the ping burst, clock pings as datagrams on
// a fake WebTransport while the heartbeat stays on the control stream, the
// tempo timeline with its events and setTempo, a resume's replayed tempo
// changes, and latency with the one-way delay of broadcasts. Last, the client
// against the real jam-server over WebSocket (the `ws` package where Node has
// no WebSocket): the estimate within 1 ms on loopback and within its bound
// through a relay that delays one direction by 30 ms, broadcasts carrying
// `serverTime` and the sender's delay, and a tempo change seen by two clients.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import {
  ClockEstimator,
  JamClient,
  TempoTimeline,
  gradeLatency,
  localNow,
  tempoMath,
} from '../../clients/js/jam-client.js';
import { BASE, CONNECT_INFO, FakeServer } from './fake-server.mjs';
import { JamServer } from './harness.mjs';

const close = (a, b, eps = 1e-6) => Math.abs(a - b) < eps;

/** Waits for `pred` to hold, checking every few ms, for at most `ms`. */
async function until(pred, what, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Resolves with the first `name` event's first argument that passes `pred`, or rejects after `ms`. */
function nextEvent(client, name, pred = () => true, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${name} event within ${ms} ms`));
    }, ms);
    const off = client.on(name, (arg) => {
      if (!pred(arg)) return;
      clearTimeout(timer);
      off();
      resolve(arg);
    });
  });
}

// ---------------------------------------------------------------------------

describe('the clock and tempo arithmetic', () => {
  test('the median of the fastest samples wins and the bound is half the best round trip (clock.rs)', () => {
    const c = new ClockEstimator();
    assert.equal(c.offsetMs, null);
    assert.equal(c.errorMs, null);
    assert.equal(c.serverNow(), null);
    // True offset 100 ms; fast samples are symmetric, slow ones skewed by queueing.
    c.add(0, 102, 4); // rtt 4, offset 100
    c.add(10, 112.5, 14); // rtt 4, offset 100.5
    c.add(20, 121, 23); // rtt 3, offset 99.5
    c.add(30, 180, 90); // rtt 60, offset 120: ignored
    c.add(100, 150, 130); // rtt 30, offset 35: ignored
    assert.equal(c.rttMs, 3);
    assert.equal(c.errorMs, 1.5);
    assert.equal(c.offsetMs, 100);
    assert.equal(c.sampleCount, 5);
    assert.equal(c.toServerTime(1000), 1100);
    assert.equal(c.toLocalTime(1100), 1000);
    assert.ok(Math.abs(c.serverNow() - (localNow() + 100)) < 50);
  });

  test('old samples are forgotten (clock.rs)', () => {
    const c = new ClockEstimator();
    c.add(0, 50.5, 1); // the fastest, offset 50
    for (let i = 0; i < 16; i++) {
      const t0 = 10 * i + 10;
      c.add(t0, t0 + 1 + 7, t0 + 2); // rtt 2, offset 7
    }
    assert.equal(c.rttMs, 2);
    assert.equal(c.offsetMs, 7);
    assert.equal(c.sampleCount, 16);
    c.reset();
    assert.equal(c.offsetMs, null);
  });

  test('the default tempo counts beats from the room creation (tempo.rs)', () => {
    const t = tempoMath.defaultAt(1000);
    assert.deepEqual(t, { bpm: 120, beatsPerBar: 4, originTime: 1000, originBeat: 0, setBy: null });
    assert.ok(close(tempoMath.beatAt(t, 1000), 0));
    assert.ok(close(tempoMath.beatAt(t, 1500), 1), '120 bpm: a beat every 500 ms');
    assert.ok(close(tempoMath.barMs(t), 2000));
    assert.deepEqual(tempoMath.nextBarLine(t, 1000), { time: 1000, beat: 0 });
    assert.deepEqual(tempoMath.nextBarLine(t, 1001), { time: 3000, beat: 4 });
    assert.deepEqual(tempoMath.nextBarLine(t, 0), { time: 1000, beat: 0 }, 'never before the origin');
  });

  test('a change starts on a bar line at least 250 ms ahead (tempo.rs)', () => {
    const t = tempoMath.defaultAt(0);
    let n = tempoMath.changed(t, 90, null, 1700, 'u');
    assert.deepEqual([n.originTime, n.originBeat, n.beatsPerBar, n.setBy], [2000, 4, 4, 'u']);
    n = tempoMath.changed(t, 90, 3, 1800, 'u');
    assert.deepEqual([n.originTime, n.originBeat, n.beatsPerBar], [4000, 8, 3]);
  });

  test('a change never moves the beat phase and beat numbers go on (tempo.rs)', () => {
    let t = tempoMath.defaultAt(12345.678);
    let received = 20000;
    for (const [bpm, bar] of [[97.3, 3], [300, null], [20, 7], [133, 16]]) {
      const n = tempoMath.changed(t, bpm, bar, received, 'u');
      assert.ok(close(tempoMath.beatAt(t, n.originTime), n.originBeat));
      assert.ok(close(n.originBeat, Math.round(n.originBeat)));
      assert.ok(close((n.originBeat - t.originBeat) % t.beatsPerBar, 0));
      assert.ok(n.originTime >= received + 250);
      assert.ok(n.originTime < received + 250 + tempoMath.barMs(t) + 1e-6);
      assert.ok(n.originTime >= t.originTime);
      received = n.originTime + 777;
      t = n;
    }
  });

  test('a change while another is pending aligns to the pending one (tempo.rs)', () => {
    const t = tempoMath.defaultAt(0);
    const pending = tempoMath.changed(t, 60, 2, 100, 'a');
    assert.deepEqual([pending.originTime, pending.originBeat], [2000, 4]);
    const next = tempoMath.changed(pending, 150, null, 150, 'b');
    assert.deepEqual([next.originTime, next.originBeat], [2000, 4]);
    const later = tempoMath.changed(pending, 150, null, 1900, 'b');
    assert.deepEqual([later.originTime, later.originBeat], [4000, 6]);
  });

  test('the timeline keeps the previous tempo until a pending change starts, so beats never jump', () => {
    const line = new TempoTimeline();
    assert.equal(line.at(0), null);
    assert.equal(line.beatAt(0), null);
    assert.equal(line.nextBeatTime(0), null);
    const t0 = tempoMath.defaultAt(0); // 120 bpm, 4/4: a beat every 500 ms
    line.reset(t0);
    const t1 = tempoMath.changed(t0, 60, 3, 1700, 'u'); // from 2,000 (beat 4), a beat every 1,000 ms
    line.apply(t1);
    assert.equal(line.at(1999.9), t0, 'the previous tempo until the origin');
    assert.equal(line.pendingAfter(1999.9), t1);
    assert.equal(line.at(2000), t1);
    assert.equal(line.pendingAfter(2000), null);
    assert.ok(close(line.beatAt(1500), 3));
    assert.ok(close(line.beatAt(2000), 4));
    assert.ok(close(line.beatAt(2500), 4.5), 'the new tempo counts on from the bar line');
    assert.ok(Math.abs(line.beatAt(2000 - 1e-3) - line.beatAt(2000 + 1e-3)) < 1e-5, 'no jump at the switch');
    assert.ok(close(line.beatAt(-500), -1), 'before the first known tempo, counted by it');

    // Stepping beat by beat across the change: 500 ms apart, then 1,000 ms.
    const beats = [];
    for (let t = 0; beats.length < 8; ) beats.push((t = line.nextBeatTime(t)));
    assert.deepEqual(beats, [500, 1000, 1500, 2000, 3000, 4000, 5000, 6000]);
    assert.equal(line.nextBeatTime(250), 500);
    assert.equal(line.nextBeatTime(1999.999999), 2000);
    // Bar lines: every 2,000 ms in 4/4, then every 3,000 ms in 3/4 from 2,000.
    const bars = [];
    for (let t = -1; bars.length < 4; ) bars.push((t = line.nextBarTime(t)));
    assert.deepEqual(bars, [0, 2000, 5000, 8000]);

    assert.deepEqual(line.barAt(1250), { bar: 0, beatInBar: 2.5, beat: 2.5, beatsPerBar: 4, barTime: 0, tempo: t0 });
    assert.deepEqual(line.barAt(2000), { bar: 0, beatInBar: 0, beat: 4, beatsPerBar: 3, barTime: 2000, tempo: t1 });
    assert.deepEqual(line.barAt(6500), { bar: 1, beatInBar: 1.5, beat: 8.5, beatsPerBar: 3, barTime: 5000, tempo: t1 });

    // A second change before the first took effect replaces it (the server
    // places it on the pending tempo's first bar line, its origin).
    const t2 = tempoMath.changed(t1, 150, null, 150, 'b');
    assert.equal(t2.originTime, 2000);
    line.apply(t2);
    assert.deepEqual(line.tempos, [t0, t2]);
    // One on a later bar line of the pending tempo keeps it until then.
    const t3 = tempoMath.changed(t2, 100, 2, 2100, 'c'); // 150 bpm, 3/4 from 2,000: bar lines every 1,200 ms
    line.apply(t3);
    assert.deepEqual(line.tempos, [t0, t2, t3]);
    assert.equal(t3.originTime, 3200);
    assert.equal(line.at(3199), t2);
    assert.equal(line.at(3200), t3);
    assert.equal(line.nextBeatTime(2900), 3200, 'the new tempo\'s origin is its first beat');
  });

  test('gradeLatency: good up to 25 ms, playable up to 50 ms, hard above', () => {
    assert.deepEqual([0, 25, 25.5, 50, 51, null].map(gradeLatency), ['good', 'good', 'playable', 'playable', 'hard', null]);
  });
});

// ---------------------------------------------------------------------------

/** The fake server's clock runs this far ahead of the local one. */
const FAKE_OFFSET_MS = 5000;
const fakeNow = () => localNow() + FAKE_OFFSET_MS;

function fakeClient(options = {}) {
  return new JamClient({ baseUrl: BASE, reconnectBaseMs: 5, reconnectMaxMs: 40, storage: null, ...options });
}

/**
 * A WebTransport stand-in with a control stream and datagrams, answering
 * `clock:ping` on the path it came on; `answerStream` false leaves the
 * control stream silent (a link that died while datagrams still pass).
 */
function installFakeWebTransport() {
  const wt = { sessions: [], pings: [], answerStream: true };
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  globalThis.WebTransport = class FakeWebTransport {
    constructor(url) {
      this.url = url;
      wt.sessions.push(this);
      this.ready = Promise.resolve();
      this.closed = new Promise((resolve) => {
        this._end = resolve;
      });
      const control = new TransformStream();
      const toClient = control.writable.getWriter();
      const dgDown = new TransformStream();
      const dgToClient = dgDown.writable.getWriter();
      const answer = (bytes, path) => {
        const env = JSON.parse(decoder.decode(bytes));
        if (env.event !== 'clock:ping') return;
        wt.pings.push({ path, id: env.id });
        const pong = JSON.stringify({ event: 'clock:pong', data: { t0: env.data.t0, serverTime: fakeNow() }, id: env.id });
        if (path === 'datagram') dgToClient.write(encoder.encode(pong));
        else if (wt.answerStream) toClient.write(encoder.encode(pong + '\n'));
      };
      this._stream = { readable: control.readable, writable: new WritableStream({ write: (chunk) => answer(chunk, 'stream') }) };
      this.datagrams = {
        maxDatagramSize: 1200,
        readable: dgDown.readable,
        writable: new WritableStream({ write: (chunk) => answer(chunk, 'datagram') }),
      };
    }

    async createBidirectionalStream() {
      return this._stream;
    }

    close() {
      this._end({ closeCode: 0, reason: '' });
    }
  };
  return wt;
}

describe('jam-client.js timing against a fake server', { timeout: 20_000 }, () => {
  let server;
  let client;
  let room;

  beforeEach(() => {
    server = new FakeServer();
    server.install();
    server.connectInfo = { ...CONNECT_INFO, features: ['resume', 'clock', 'latency', 'tempo'] };
    // A quick tempo, so changes take effect within the test: 300 bpm, 2 beats a bar (400 ms).
    room = { code: 'K7F3QX', seq: 0, tempo: { bpm: 300, beatsPerBar: 2, originTime: fakeNow() - 10_000, originBeat: 0, setBy: null } };
    server.onMessage = (env, ws) => {
      const { event, data, id } = env;
      if (event === 'clock:ping') {
        ws.push('clock:pong', { t0: data.t0, serverTime: fakeNow() }, id);
      } else if (event === 'session:create') {
        ws.push('session:created', {
          roomCode: room.code,
          userId: 'u1',
          hostId: 'u1',
          participants: [{ id: 'u1', name: data.name, instrument: '', status: 'active', rttMs: null }],
          resumeToken: 't1',
          seq: room.seq,
          serverTime: fakeNow(),
          tempo: room.tempo,
        }, id);
      } else if (event === 'tempo:set') {
        room.tempo = tempoMath.changed(room.tempo, data.bpm, data.beatsPerBar, fakeNow(), 'u1');
        ws.push('tempo:changed', { tempo: room.tempo }, id, { seq: ++room.seq });
      }
    };
  });

  afterEach(() => {
    client?.close();
    client = null;
    server.restore();
  });

  test('a burst of pings at connect gives the offset within its bound; only our own pings count', async () => {
    client = fakeClient({ clockBurst: 8, clockBurstSpacingMs: 5, heartbeatIntervalMs: 0, clockIntervalMs: 0 });
    const clockEvents = [];
    client.on('clock', (c) => clockEvents.push(c));
    const connectedAt = Date.now();
    await client.connect();
    await until(() => client.clock.sampleCount === 8, 'eight samples');
    assert.ok(Date.now() - connectedAt < 1000, 'the burst is quick');
    assert.equal(server.pings.length, 8);
    assert.equal(client.stats.clockPingsSent, 8);
    assert.equal(client.stats.clockSamples, 8);
    assert.equal(client.stats.websocketSent, 0, 'clock pings are not counted as sent messages');
    assert.equal(clockEvents.length, 8);
    const { offsetMs, errorMs, rttMs } = client.clock;
    // The fake reads its clock as the ping arrives and answers a timer tick
    // later: every sample comes out low by half its round trip. (The bound
    // itself is checked against the real server below.)
    assert.ok(offsetMs <= FAKE_OFFSET_MS && offsetMs > FAKE_OFFSET_MS - 5, `offset ${offsetMs}, ±${errorMs}`);
    assert.equal(errorMs, rttMs / 2);
    assert.deepEqual(clockEvents.at(-1), { offsetMs, rttMs, errorMs, sample: clockEvents.at(-1).sample });
    assert.ok(Math.abs(client.serverNow() - fakeNow()) <= errorMs + 5);

    // A ping the page sends itself carries a t0 of its own choosing: no sample.
    const pong = await client.request('clock:ping', { t0: 5 });
    assert.equal(pong.t0, 5);
    assert.equal(client.clock.sampleCount, 8);
    assert.equal(client.clock.offsetMs, offsetMs);
  });

  test('over WebTransport the clock pings go as datagrams; the heartbeat stays on the control stream', async () => {
    const wt = installFakeWebTransport();
    server.connectInfo = {
      ...server.connectInfo,
      webtransport: { url: 'https://jam.test:4433/jam', certificateHashes: [] },
    };
    client = fakeClient({ clockBurst: 4, clockBurstSpacingMs: 5, clockIntervalMs: 30, heartbeatIntervalMs: 40, heartbeatTimeoutMs: 200 });
    try {
      assert.equal(await client.connect(), 'webtransport');
      await until(() => wt.pings.filter((p) => p.path === 'stream').length >= 2 && client.clock.sampleCount >= 8, 'samples on both paths');
      const dg = wt.pings.filter((p) => p.path === 'datagram').length;
      assert.ok(dg >= 6, `burst and interval pings as datagrams (${dg})`);
      assert.equal(client.stats.clockDatagramsSent, dg);
      assert.equal(client.stats.datagramsSent, 0, 'clock datagrams are not counted as broadcasts');
      assert.equal(client.stats.datagramsReceived, 0, 'pongs are not counted as received events');
      assert.equal(wt.pings.filter((p) => p.path === 'stream').length, client.stats.heartbeatsSent);
      assert.ok(Math.abs(client.clock.offsetMs - FAKE_OFFSET_MS) < 5);

      // Datagram pongs feed the clock, but only the control stream proves the link alive.
      wt.answerStream = false;
      const samples = client.stats.clockSamples;
      const [dead] = await Promise.all([nextEvent(client, 'reconnecting'), until(() => client.stats.clockSamples > samples + 2, 'datagram samples go on')]);
      assert.match(dead.reason, /no answer from the server/);
      assert.equal(client.stats.heartbeatTimeouts, 1);
    } finally {
      client.close();
      delete globalThis.WebTransport;
    }
  });

  test('the tempo: the previous one until a pending change starts; events; setTempo', async () => {
    client = fakeClient();
    await client.connect();
    await until(() => client.clock.sampleCount >= 4, 'clock samples');
    const first = nextEvent(client, 'tempo');
    await client.create({ name: 'Ana' });
    const old = room.tempo;
    assert.deepEqual(await first, { tempo: old, pending: null });
    assert.deepEqual(client.tempo, old);
    const now = client.serverNow();
    assert.ok(Math.abs(client.beatAt() - (now - old.originTime) / 200) < 0.05, 'beats counted from the origin, 200 ms apart');
    assert.ok(close(client.beatAt(old.originTime + 4000), 20));

    const announced = nextEvent(client, 'tempo');
    const sentAt = client.serverNow();
    const tempo = await client.setTempo(90, 3);
    const set = server.received.find((e) => e.event === 'tempo:set');
    assert.deepEqual(set.data, { roomCode: 'K7F3QX', bpm: 90, beatsPerBar: 3 });
    assert.deepEqual(tempo, room.tempo);
    assert.equal(tempo.setBy, 'u1');
    assert.ok(tempo.originTime >= sentAt + 250 - client.clock.errorMs);
    assert.deepEqual(await announced, { tempo: old, pending: tempo }, 'announced, not yet in effect');
    assert.deepEqual(client.tempo, old, 'the previous tempo holds until the bar line');
    assert.deepEqual(client.pendingTempo, tempo);
    assert.ok(close(client.beatAt(tempo.originTime), tempo.originBeat), 'both tempos agree at the switch');
    assert.ok(close(client.beatAt(tempo.originTime - 100), tempo.originBeat - 0.5), 'by the old tempo before it');
    assert.ok(close(client.beatAt(tempo.originTime + 1000 * 60 / 90), tempo.originBeat + 1), 'by the new one after');
    assert.equal(client.nextBeatTime(tempo.originTime - 1), tempo.originTime);
    assert.equal(client.nextBarTime(tempo.originTime - 1), tempo.originTime);
    assert.equal(client.barAt(tempo.originTime).beatsPerBar, 3);

    // When the bar line passes, `tempo` says so.
    const took = await nextEvent(client, 'tempo', () => true, 2000);
    assert.deepEqual(took, { tempo, pending: null });
    assert.ok(client.serverNow() >= tempo.originTime, 'not before the origin');
    assert.deepEqual(client.tempo, tempo);

    await assert.rejects(fakeClient().setTempo(100), { code: 'not_in_session' });
  });

  test('after a resume the answer\'s tempo stays the newest over replayed changes', async () => {
    client = fakeClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const t0 = room.tempo;
    const at = t0.originTime + 60_000; // bar lines of t0 every 400 ms
    const t1 = tempoMath.changed(t0, 100, null, at, 'u2');
    const t1b = tempoMath.changed(t1, 110, null, t1.originTime + 5000, 'u2');
    const t2 = tempoMath.changed(t1, 130, 5, t1.originTime + 5000, 'u3'); // supersedes t1b: same origin
    assert.equal(t2.originTime, t1b.originTime);
    const prevOnMessage = server.onMessage;
    server.onMessage = (env, ws) => {
      if (env.event !== 'session:resume') return prevOnMessage(env, ws);
      ws.push('session:resumed', {
        roomCode: room.code, userId: 'u1', hostId: 'u1', participants: [{ id: 'u1', name: 'Ana', instrument: '', status: 'active', rttMs: 3 }],
        seq: 3, resumeToken: 't2', serverTime: fakeNow(), tempo: t2, replayed: true,
      }, env.id);
      ws.push('tempo:changed', { tempo: t1 }, undefined, { seq: 1 });
      ws.push('tempo:changed', { tempo: t1b }, undefined, { seq: 2 });
      ws.push('tempo:changed', { tempo: t2 }, undefined, { seq: 3 });
    };
    const replayed = [];
    client.on('tempo:changed', (d, env) => replayed.push(env.replayed));
    client[Symbol.for('jam-client.dropTransport')]();
    await nextEvent(client, 'reconnected');
    await until(() => replayed.length === 3, 'the replay');
    assert.deepEqual(replayed, [true, true, true]);
    const inEffect = (t) => client.barAt(t).tempo;
    assert.deepEqual(inEffect(at), t0);
    assert.deepEqual(inEffect(t1.originTime), t1);
    assert.deepEqual(inEffect(t2.originTime - 1), t1);
    assert.deepEqual(inEffect(t2.originTime), t2, 't1b never took effect');
    assert.deepEqual(client.room.participants[0].rttMs, 3);
  });

  test('session:latency keeps rttMs current; broadcasts carry serverTime and the sender\'s one-way delay', async () => {
    client = fakeClient();
    await client.connect();
    await client.create({ name: 'Ana' });
    const ws = server.last;
    ws.push('session:user-joined', { user: { id: 'u2', name: 'Ben', instrument: '', status: 'active', rttMs: null } }, undefined, { seq: 1 });
    ws.push('session:user-joined', { user: { id: 'u3', name: 'Cleo', instrument: '' } }, undefined, { seq: 2 });
    await until(() => client.room.participants.length === 3, 'Ben and Cleo');
    assert.deepEqual(client.room.participants.map((p) => p.rttMs), [null, null, null]);

    const heard = [];
    client.on('event:broadcast', (data) => heard.push(data));
    // Before anything is known of Ben's round trip, the delay is unknown.
    ws.push('event:broadcast', { eventName: 'note', payload: { n: 1 }, senderId: 'u2', serverTime: 1234.5 });
    await until(() => heard.length === 1, 'the first note');
    assert.equal(heard[0].serverTime, 1234.5);
    assert.equal(heard[0].delayMs, null);

    const rooms = [];
    client.on('room', (r) => r && rooms.push(r.participants.map((p) => p.rttMs)));
    const latency = nextEvent(client, 'latency');
    ws.push('session:latency', { rttMs: { u1: 10, u2: 30, u3: 61 } });
    const got = await latency;
    assert.deepEqual(got.rttMs, { u1: 10, u2: 30, u3: 61 });
    assert.deepEqual(rooms, [[10, 30, 61]], '`room` said the change first');
    assert.equal(client.delayMs('u2'), 20);
    assert.equal(gradeLatency(client.delayMs('u3')), 'playable');

    ws.push('event:broadcast', { eventName: 'note', payload: { n: 2 }, senderId: 'u2', serverTime: 2000.25 }, undefined, { seq: 3 });
    ws.push('event:broadcast', { eventName: 'note', payload: { n: 3 }, senderId: 'u3', serverTime: 2001 });
    await until(() => heard.length === 3, 'two more notes');
    assert.deepEqual(heard.slice(1).map((d) => [d.serverTime, d.delayMs]), [[2000.25, 20], [2001, 35.5]]);

    // An away seat is left out of the map: it keeps its value; a null clears one.
    ws.push('session:user-away', { userId: 'u3' }, undefined, { seq: 4 });
    ws.push('session:latency', { rttMs: { u1: 12, u2: null } });
    await until(() => client.room.participants[0].rttMs === 12, 'the second latency');
    assert.deepEqual(client.room.participants.map((p) => p.rttMs), [12, null, 61]);
    assert.equal(client.delayMs('u2'), null);
  });
});

// ---------------------------------------------------------------------------

/**
 * A TCP relay in front of the server's HTTP/WebSocket port that delays every
 * byte from the client to the server by `upMs` and nothing the other way: an
 * asymmetric path, which no round-trip measurement can see.
 */
class SkewRelay {
  static async start(targetPort, upMs) {
    const relay = new SkewRelay();
    relay.sockets = new Set();
    relay.server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        s.setNoDelay(true);
        s.on('error', () => {});
        relay.sockets.add(s);
        s.on('close', () => relay.sockets.delete(s));
      }
      // Timers of one duration fire in the order they were set: bytes keep their order.
      client.on('data', (chunk) => setTimeout(() => upstream.write(chunk), upMs));
      upstream.on('data', (chunk) => client.write(chunk));
      client.on('close', () => setTimeout(() => upstream.destroy(), upMs));
      upstream.on('close', () => client.destroy());
    });
    await new Promise((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    relay.port = relay.server.address().port;
    return relay;
  }

  async close() {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('jam-client.js timing against the real jam-server (WebSocket)', { timeout: 60_000 }, () => {
  let server;
  let relay;
  const clients = [];
  const saved = {};
  /**
   * The true offset is 0 (one machine; the server anchors its clock to Unix
   * time, the client reads Unix time from the same monotonic clock), up to how
   * each side paired its anchor with that clock: the loopback estimate, within
   * its own bound, is the best measure of that residue.
   */
  let loopback = { offsetMs: 0, errorMs: 1 };

  before(async () => {
    server = await JamServer.create({ logName: 'server-timing.log' });
    await server.start();
    relay = await SkewRelay.start(server.httpPort, 30);
    saved.WebSocket = globalThis.WebSocket;
    saved.fetch = globalThis.fetch;
    if (typeof globalThis.WebSocket !== 'function') globalThis.WebSocket = (await import('ws')).WebSocket;
    // `/connect` names the port the server bound: through the relay, point
    // the WebSocket at the relay too.
    globalThis.fetch = async (url, init) => {
      const res = await saved.fetch(url, init);
      const u = new URL(String(url));
      if (u.pathname !== '/connect' || Number(u.port) !== relay.port) return res;
      const info = await res.json();
      info.websocket.url = `ws://127.0.0.1:${relay.port}/ws`;
      return Response.json(info);
    };
  });

  after(async () => {
    for (const c of clients) c.close();
    globalThis.fetch = saved.fetch;
    globalThis.WebSocket = saved.WebSocket;
    if (relay) await relay.close();
    if (server) await server.dispose();
  });

  function realClient({ viaRelay = false, ...options } = {}) {
    const c = new JamClient({
      baseUrl: viaRelay ? `http://127.0.0.1:${relay.port}` : server.baseUrl,
      transport: 'websocket',
      storage: null,
      reconnect: false,
      ...options,
    });
    clients.push(c);
    return c;
  }

  test('/connect lists clock, latency and tempo', async () => {
    const info = await (await saved.fetch(`${server.baseUrl}/connect`)).json();
    for (const f of ['resume', 'clock', 'latency', 'tempo']) assert.ok(info.features.includes(f), f);
  });

  test('on loopback the estimate is within 1 ms of the truth (0: one machine, one clock)', async (t) => {
    const c = realClient();
    await c.connect();
    await until(() => c.clock.sampleCount >= 8, 'the burst answered');
    const { offsetMs, errorMs, rttMs, sampleCount } = c.clock;
    t.diagnostic(`loopback: offset ${offsetMs.toFixed(3)} ms, error bound ±${errorMs.toFixed(3)} ms, best round trip ${rttMs.toFixed(3)} ms, ${sampleCount} samples`);
    assert.ok(Math.abs(offsetMs) <= 1, `offset ${offsetMs} ms`);
    loopback = { offsetMs, errorMs };
    assert.ok(Math.abs(c.serverNow() - localNow()) <= 1);
  });

  test('through a relay delaying one direction by 30 ms the error stays within the reported bound', async (t) => {
    const c = realClient({ viaRelay: true });
    await c.connect();
    assert.equal(c.connectInfo.websocket.url, `ws://127.0.0.1:${relay.port}/ws`);
    await until(() => c.clock.sampleCount >= 8, 'the burst answered');
    const { offsetMs, errorMs, rttMs } = c.clock;
    const error = offsetMs - loopback.offsetMs;
    t.diagnostic(
      `30 ms one way: offset ${offsetMs.toFixed(3)} ms, error ${error.toFixed(3)} ms against the loopback estimate ` +
        `(${loopback.offsetMs.toFixed(3)} ± ${loopback.errorMs.toFixed(3)}), reported bound ±${errorMs.toFixed(3)} ms, best round trip ${rttMs.toFixed(3)} ms`,
    );
    assert.ok(offsetMs > 10, `the skew shows: ${offsetMs} ms`);
    assert.ok(errorMs >= 15, `the bound covers the skew: ${errorMs} ms`);
    // With all of the delay on one leg the error equals the bound (half the round trip),
    // so a millisecond of timer and scheduling noise is allowed on top.
    assert.ok(
      Math.abs(error) <= errorMs + loopback.errorMs + 1,
      `error ${error} ms within ±${errorMs} (+${loopback.errorMs} for the truth's own uncertainty, +1 ms of noise)`,
    );
  });

  test('broadcasts carry serverTime and the sender\'s one-way delay; a tempo change reaches both', async (t) => {
    const ana = realClient();
    const ben = realClient({ viaRelay: true });
    await ana.connect();
    await ben.connect();
    const room = await ana.create({ name: 'Ana' });
    assert.equal(typeof room.serverTime, 'number');
    assert.deepEqual(Object.keys(room.tempo).sort(), ['beatsPerBar', 'bpm', 'originBeat', 'originTime', 'setBy']);
    await ben.join({ roomCode: room.roomCode, name: 'Ben' });
    await until(() => ana.clock.sampleCount >= 8 && ben.clock.sampleCount >= 8, 'both clocks');

    // The server measures Ben's round trip through the relay (about 30 ms)
    // and tells the room in session:latency.
    const benId = ben.room.userId;
    const rttOf = (c, id) => c.room.participants.find((p) => p.id === id).rttMs;
    await until(() => rttOf(ana, benId) >= 25 && rttOf(ana, ana.room.userId) !== null, 'Ben\'s round trip at Ana', 15_000);
    await until(() => rttOf(ben, benId) >= 25, 'Ben\'s round trip at Ben', 5_000);
    t.diagnostic(`rttMs at Ana: Ana ${rttOf(ana, ana.room.userId)}, Ben ${rttOf(ana, benId)}`);

    const heard = new Promise((resolve) => {
      ana.on('event:broadcast', (data) => resolve({ data, arrivedAt: ana.serverNow() }));
    });
    const sentAt = localNow(); // one machine: Ben's local clock is the server's
    assert.equal(ben.broadcast('note', { n: 60 }), 'websocket');
    const { data, arrivedAt } = await heard;
    const upMs = data.serverTime - sentAt;
    t.diagnostic(`Ben -> server ${upMs.toFixed(2)} ms (30 ms injected), server -> Ana ${(arrivedAt - data.serverTime).toFixed(2)} ms, delayMs ${data.delayMs}`);
    assert.deepEqual([data.eventName, data.payload, data.senderId], ['note', { n: 60 }, benId]);
    assert.ok(upMs >= 29 && upMs < 1000, `serverTime is when the server got it: ${upMs} ms after sending`);
    assert.ok(arrivedAt - data.serverTime > -(ana.clock.errorMs + 0.5) && arrivedAt - data.serverTime < 1000);
    assert.equal(data.delayMs, (rttOf(ana, benId) + rttOf(ana, ana.room.userId)) / 2);
    assert.ok(data.delayMs >= 12.5);

    // Ana sets the tempo; both get it announced, and both switch on the same bar line.
    const old = ana.tempo;
    assert.deepEqual(ben.tempo, old);
    const benHears = nextEvent(ben, 'tempo', (s) => s.pending !== null, 5000);
    const isNew = (s) => s.pending === null && s.tempo.bpm === 90;
    const benSwitched = nextEvent(ben, 'tempo', isNew, 5000);
    const anaSwitched = nextEvent(ana, 'tempo', isNew, 5000);
    const before = ana.serverNow();
    const tempo = await ana.setTempo(90, 3);
    const answered = ana.serverNow();
    assert.deepEqual([tempo.bpm, tempo.beatsPerBar, tempo.setBy], [90, 3, ana.room.userId]);
    const bars = (tempo.originTime - old.originTime) / tempoMath.barMs(old);
    assert.ok(Math.abs(bars - Math.round(bars)) < 1e-6, 'on a bar line of the old tempo');
    assert.ok(close(tempoMath.beatAt(old, tempo.originTime), tempo.originBeat));
    const err = ana.clock.errorMs + 0.5;
    assert.ok(tempo.originTime >= before + 250 - err, 'at least 250 ms after the server got it');
    assert.ok(tempo.originTime <= answered + 250 + tempoMath.barMs(old) + err, 'on the first such bar line');
    assert.deepEqual((await benHears).pending, tempo);
    if (ben.serverNow() < tempo.originTime - 5) {
      assert.deepEqual(ben.tempo, old, 'the old tempo until the bar line');
      assert.deepEqual(ana.tempo, old);
    }
    // Each switches by its own clock (Ben's runs about 15 ms early: the skew).
    const [benNow, anaNow] = await Promise.all([
      benSwitched.then(() => ben.serverNow()),
      anaSwitched.then(() => ana.serverNow()),
    ]);
    t.diagnostic(`switched at server time origin + ${(anaNow - tempo.originTime).toFixed(2)} ms (Ana), + ${(benNow - tempo.originTime).toFixed(2)} ms (Ben, by his estimate)`);
    assert.ok(anaNow >= tempo.originTime && anaNow < tempo.originTime + 50);
    assert.deepEqual(ana.tempo, tempo);
    assert.deepEqual(ben.tempo, tempo);
    assert.ok(Math.abs(ben.beatAt(tempo.originTime - 1) - (tempo.originBeat - 1 / 500)) < 1e-6);
    assert.ok(Math.abs(ben.beatAt(tempo.originTime + 1) - (tempo.originBeat + 90 / 60000)) < 1e-6);
  });
});
