// nodes.test.mjs: the JamSession page in Chromium on two jam-server nodes that share
// one real redis-server, reached through one address in front of them (a small
// proxy, as a load balancer would be). The node that holds the room is killed with
// SIGKILL: both pages go on in the same room, with the same players and colours,
// on the other node, and neither says the session ended.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  JamServer,
  TIMEOUT,
  createSession,
  identities,
  joinSession,
  launchBrowser,
  openPlayer,
  remoteNoteCount,
  screenshot,
  stats,
  waitForNames,
  waitForRemoteNotes,
} from './harness.mjs';
import { frontDoor, startRedis } from './server.mjs';

describe('two nodes on one Redis, in Chromium', { timeout: 120_000 }, () => {
  let redis;
  let door;
  let browser;
  const nodes = [];
  const players = [];
  /** What the first test leaves to the second: its two pages, the room and its seats. */
  const state = {};
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jam-e2e-nodes-'));

  before(async () => {
    redis = await startRedis();
    for (const id of ['a', 'b']) {
      const node = await JamServer.create({
        extraArgs: ['--redis-url', redis.url, '--node-id', id, '--resume-key-file', path.join(keyDir, 'resume.key')],
        logName: `node-${id}.log`,
      });
      node.id = id;
      await node.start();
      nodes.push(node);
    }
    door = await frontDoor(nodes);
    browser = await launchBrowser();
  });

  after(async () => {
    for (const p of players) await p.context.close();
    if (browser) await browser.close();
    if (door) door.close();
    for (const n of nodes) await n.dispose();
    if (redis) redis.stop();
    fs.rmSync(keyDir, { recursive: true, force: true });
  });

  test('killing the node that holds the room: both pages go on in the same room on the other node', async () => {
    const site = { baseUrl: door.url };
    const ana = await openPlayer(browser, site);
    players.push(ana);
    const roomCode = await createSession(ana.page, { name: 'Ana', instrument: 'piano' });
    const ben = await openPlayer(browser, site, { query: `/?room=${roomCode}` });
    players.push(ben);
    await joinSession(ben.page, { name: 'Ben', instrument: 'drums' });
    for (const p of [ana, ben]) await waitForNames(p.page, ['Ana', 'Ben']);
    const seats = await identities(ana.page);
    const holderId = await ana.page.evaluate(() => window.jam.client.connectInfo.node);
    const holder = nodes.find((n) => n.id === holderId);
    assert.ok(holder, `the room is on node ${holderId}`);
    const resumes = [await stats(ana.page), await stats(ben.page)].map((s) => s.resumes);

    holder.alive = false;
    holder.proc.kill('SIGKILL');

    for (const [i, p] of [ana, ben].entries()) {
      await p.page.waitForFunction(
        (n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected',
        resumes[i],
        { timeout: TIMEOUT.reconnect },
      );
    }
    for (const p of [ana, ben]) {
      await waitForNames(p.page, ['Ana', 'Ben']);
      assert.ok(await p.page.getByTestId('session-ended').isHidden(), 'no "session ended"');
      assert.equal((await p.page.getByTestId('room-code').textContent()).trim(), roomCode);
      assert.deepEqual(await identities(p.page), seats, 'same players, ids and colours');
      assert.notEqual(await p.page.evaluate(() => window.jam.client.connectInfo.node), holderId);
      assert.equal((await stats(p.page)).rejoins, 0, 'resumed, not joined afresh');
    }
    await screenshot(ana.page, 'nodes-after-failover.png');
    const heard = await remoteNoteCount(ben.page);
    await ana.page.keyboard.press('a');
    await waitForRemoteNotes(ben.page, heard + 1);
    state.pages = [ana, ben];
    state.roomCode = roomCode;
    state.seats = seats;
  });

  test('deploying the node that holds the room: the pages say they are moving, not that the connection was lost', async () => {
    const [ana, ben] = state.pages;
    const third = await JamServer.create({
      extraArgs: ['--redis-url', redis.url, '--node-id', 'c', '--resume-key-file', path.join(keyDir, 'resume.key')],
      logName: 'node-c.log',
    });
    third.id = 'c';
    await third.start();
    nodes.push(third);
    const holderId = await ana.page.evaluate(() => window.jam.client.connectInfo.node);
    const holder = nodes.find((n) => n.id === holderId);
    // Every text the status line and the banner show from now on.
    for (const p of [ana, ben]) {
      await p.page.evaluate(() => {
        window.__shown = [];
        const watch = (id) => {
          const el = document.querySelector(`[data-testid="${id}"]`);
          new MutationObserver(() => window.__shown.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
        };
        watch('status-text');
        watch('session-banner');
      });
    }
    const resumes = [await stats(ana.page), await stats(ben.page)].map((s) => s.resumes);
    holder.alive = false;
    await holder.stop(); // SIGTERM: the room is handed over to node c

    for (const [i, p] of [ana, ben].entries()) {
      await p.page.waitForFunction(
        (n) => window.jam.client.stats.resumes > n && window.jam.client.state === 'connected',
        resumes[i],
        { timeout: TIMEOUT.reconnect },
      );
      assert.equal(await p.page.evaluate(() => window.jam.client.connectInfo.node), 'c');
      const shown = await p.page.evaluate(() => window.__shown);
      assert.ok(shown.some((t) => /moving to another server/i.test(t)), `"moving" was shown: ${JSON.stringify(shown)}`);
      assert.ok(!shown.some((t) => /connection lost/i.test(t)), `no "connection lost": ${JSON.stringify(shown)}`);
      assert.ok(await p.page.getByTestId('session-ended').isHidden(), 'no "session ended"');
      assert.equal((await p.page.getByTestId('room-code').textContent()).trim(), state.roomCode);
      assert.deepEqual(await identities(p.page), state.seats, 'same players, ids and colours');
    }
    const heard = await remoteNoteCount(ana.page);
    await ben.page.keyboard.press('a');
    await waitForRemoteNotes(ana.page, heard + 1);
  });
});
