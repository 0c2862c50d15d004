// fake-server.mjs: a scripted stand-in for jam-server, reachable by
// jam-client.js through stubbed `fetch` and `WebSocket` globals, for tests
// of the client's logic in Node without a real server (client.test.mjs,
// timing.test.mjs).

import assert from 'node:assert/strict';

export const BASE = 'http://jam.test:3001/';
export const CONNECT_INFO = {
  webtransport: null,
  websocket: { url: 'ws://jam.test:3001/ws' },
  protocol: 1,
};

/**
 * A fake server reachable through stubbed `fetch` and `WebSocket` globals.
 * `onMessage(envelope, socket)` scripts the answers.
 */
export class FakeServer {
  constructor() {
    this.sockets = [];
    this.fetches = 0;
    this.up = true;
    this.connectInfo = CONNECT_INFO;
    this.onMessage = () => {};
    /** What the client sent, clock pings left out (they come at any time). */
    this.received = [];
    /** The clock pings the client sent (heartbeats included). */
    this.pings = [];
  }

  install() {
    const server = this;
    this.saved = { fetch: globalThis.fetch, WebSocket: globalThis.WebSocket, WebTransport: globalThis.WebTransport };
    globalThis.fetch = async (url) => {
      server.fetches++;
      if (!server.up) throw new TypeError('fetch failed');
      // `/connect`, or `/connect?room=CODE` when the client looks its room up.
      const asked = new URL(String(url));
      assert.equal(asked.origin + asked.pathname, new URL('/connect', BASE).href);
      assert.ok([...asked.searchParams.keys()].every((k) => k === 'room'), `query of ${asked}`);
      server.lastConnectUrl = asked;
      return { ok: true, status: 200, json: async () => structuredClone(server.connectInfo) };
    };
    globalThis.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        server.sockets.push(this);
        setTimeout(() => {
          if (!server.up) {
            this.onerror?.({});
            this.onclose?.({ code: 1006, reason: '' });
            return;
          }
          this.readyState = 1;
          this.onopen?.({});
        }, 1);
      }

      send(text) {
        const env = JSON.parse(text);
        (env.event === 'clock:ping' ? server.pings : server.received).push(env);
        server.onMessage(env, this);
      }

      /** The client closing. */
      close(code = 1000, reason = '') {
        if (this.readyState === 3) return;
        this.readyState = 3;
        setTimeout(() => this.onclose?.({ code, reason }), 1);
      }

      /** The server talking; `extra` adds top-level fields such as `seq`. */
      push(event, data, id, extra = {}) {
        const env = { event, data, ...extra };
        if (id !== undefined) env.id = id;
        setTimeout(() => this.readyState === 1 && this.onmessage?.({ data: JSON.stringify(env) }), 1);
      }

      /** The connection dying under the client (or closed by the server with `code`). */
      die(code = 1006, reason = '') {
        this.readyState = 3;
        setTimeout(() => this.onclose?.({ code, reason }), 1);
      }
    };
    delete globalThis.WebTransport;
  }

  restore() {
    globalThis.fetch = this.saved.fetch;
    globalThis.WebSocket = this.saved.WebSocket;
    if (this.saved.WebTransport) globalThis.WebTransport = this.saved.WebTransport;
  }

  get last() {
    return this.sockets[this.sockets.length - 1];
  }
}
