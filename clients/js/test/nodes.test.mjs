// nodes.test.mjs: the package against several real jam-server nodes on one real
// redis-server (started here on a free port): a join sent to the wrong node follows
// `room_elsewhere`, a stopped node's room moves (`moving`, then `reconnected` on the
// new node with the same seat), and a killed node's room is taken back on another
// node by the players' own reconnects. The players reach the service through one
// address, as behind a load balancer: a small proxy here that forwards `/connect` to
// the first node that answers.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { JamClient } from 'jam-client';
import { JamServer, nextEvent } from './server.mjs';
import { frontDoor, startRedis } from '../../../web-demo/e2e/server.mjs';

describe('jam-client with several nodes on one Redis', { timeout: 90_000 }, () => {
  let redis;
  let door;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-nodes-'));
  const nodes = [];
  const clients = [];

  async function startNode(id) {
    const node = await JamServer.start([
      '--redis-url', redis.url, '--node-id', id, '--resume-key-file', path.join(dir, 'resume.key'),
    ]);
    node.id = id;
    node.alive = true;
    nodes.push(node);
    return node;
  }

  function client(baseUrl) {
    const c = new JamClient({
      baseUrl, WebSocket, storage: null, reconnectBaseMs: 100, reconnectMaxMs: 500, reconnectMaxAttempts: 200,
    });
    clients.push(c);
    return c;
  }

  before(async () => {
    redis = await startRedis();
    await startNode('a');
    await startNode('b');
    door = await frontDoor(nodes);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const n of nodes) if (n.alive) await n.stop();
    if (door) door.close();
    if (redis) redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let ana;
  let bo;
  let room;

  test('a join sent to a node that does not hold the room follows room_elsewhere to its owner', async () => {
    const [a, b] = nodes;
    ana = client(a.baseUrl);
    await ana.connect();
    assert.equal(ana.connectInfo.node, 'a');
    room = await ana.create({ name: 'Ana', instrument: 'piano' });
    bo = client(b.baseUrl);
    await bo.connect();
    assert.equal(bo.connectInfo.node, 'b');
    const joined = await bo.join({ roomCode: room.roomCode, name: 'Bo', instrument: 'bass' });
    assert.equal(joined.participants.length, 2);
    assert.equal(bo.connectInfo.node, 'a', 'Bo moved to the node that holds the room');
    const heard = nextEvent(ana, 'event:broadcast');
    bo.broadcast('note', { n: 60 });
    assert.equal((await heard)[0].payload.n, 60);
  });

  test('a stopped node hands the room over: the players move and keep their seats', async () => {
    const [a] = nodes;
    for (const [who, c] of [['ana', ana], ['bo', bo]]) {
      for (const ev of ['reconnecting', 'session-ended', 'disconnected', 'moving', 'reconnected']) {
        c.on(ev, (d) => process.env.JAM_TEST_DEBUG && console.log(who, ev, JSON.stringify(d)));
      }
    }
    const moving = [nextEvent(ana, 'moving'), nextEvent(bo, 'moving')];
    const back = [nextEvent(ana, 'reconnected'), nextEvent(bo, 'reconnected')];
    a.alive = false;
    const stopped = a.stop();
    for (const [m] of await Promise.all(moving)) {
      assert.equal(m.roomCode, room.roomCode);
      assert.equal(m.node, 'b');
    }
    const rooms = await Promise.all(back);
    await stopped;
    assert.deepEqual(rooms.map(([r]) => r.room.roomCode), [room.roomCode, room.roomCode]);
    assert.equal(ana.room.userId, room.userId, 'same seat');
    assert.equal(ana.connectInfo.node, 'b');
    assert.deepEqual(ana.room.participants.map((p) => p.name), ['Ana', 'Bo']);
    const heard = nextEvent(bo, 'event:broadcast');
    ana.broadcast('note', { n: 61 });
    assert.equal((await heard)[0].payload.n, 61);
  });

  test('a killed node\'s room is taken back on another node by the players\' reconnects', async () => {
    // The players reach the service through the front door from now on.
    const [ana2, bo2] = [client(door.url), client(door.url)];
    await ana2.connect();
    const r = await ana2.create({ name: 'Cy', instrument: 'drums' });
    await bo2.connect();
    await bo2.join({ roomCode: r.roomCode, name: 'Dee', instrument: '' });
    const holder = nodes.find((n) => n.id === ana2.connectInfo.node);
    await startNode('c');
    const back = [nextEvent(ana2, 'reconnected', () => true, 20_000), nextEvent(bo2, 'reconnected', () => true, 20_000)];
    holder.alive = false;
    holder.proc.kill('SIGKILL');
    const killed = Date.now();
    await Promise.all(back);
    const gapMs = Date.now() - killed;
    assert.equal(ana2.room.roomCode, r.roomCode);
    assert.equal(ana2.room.userId, r.userId, 'same seat');
    assert.notEqual(ana2.connectInfo.node, holder.id);
    assert.equal(ana2.connectInfo.node, bo2.connectInfo.node, 'one room on one node');
    const heard = nextEvent(ana2, 'event:broadcast');
    bo2.broadcast('note', { n: 62 });
    assert.equal((await heard)[0].payload.n, 62);
    console.log(`kill -9 of the owner: both players back after ${gapMs} ms`);
  });
});
