// websocket.js: the WebSocket transport.
//
// Owns: opening a WebSocket (the page's, or the `ws` package's in Node), one
// JSON envelope per text message, and reporting the socket's end exactly once
// through `onClose` (`takenOver` when the server closed it because the seat
// was resumed on another connection, `tokenExpired` when it ended the seat
// because its sign-in token ran out). Like webtransport.js it offers
// "envelope text in, envelope text out" and knows nothing about rooms or
// reconnecting. WebSocket has no datagrams: everything takes the one reliable path.

import { JamError } from './errors.js';

/** The WebSocket close code of a seat resumed on another connection. */
const WS_CLOSE_RESUMED_ELSEWHERE = 4000;
/** The WebSocket close code of a seat whose sign-in token ran out (docs/protocol.md §13). */
const WS_CLOSE_TOKEN_EXPIRED = 4003;

/** Opens a WebSocket. Resolves to a transport object once it is open. */
export function openWebSocket(url, { WebSocket, timeoutMs, onMessage, onClose }) {
  return new Promise((resolve, reject) => {
    if (typeof WebSocket !== 'function') {
      reject(new JamError('connect_failed', 'no WebSocket here (in Node 20, pass the `WebSocket` option, e.g. from the `ws` package)'));
      return;
    }
    const ws = new WebSocket(url);
    let opened = false;
    let closed = false;
    const timer = setTimeout(() => {
      try { ws.close(); } catch { /* ignore */ }
      reject(new JamError('timeout', `opening WebSocket took longer than ${timeoutMs} ms`));
    }, timeoutMs);

    const transport = {
      kind: 'websocket',
      hasDatagrams: false,
      get isClosed() {
        return closed;
      },
      maxDatagramSize: 0,
      sendControl(text) {
        if (ws.readyState === 1) ws.send(text);
      },
      sendDatagram() {
        throw new Error('WebSocket has no datagrams');
      },
      close(reason = 'closed by client') {
        try { ws.close(1000, reason.slice(0, 100)); } catch { /* ignore */ }
        finish(reason);
      },
    };

    function finish(reason, code = null) {
      if (closed) return;
      closed = true;
      if (opened) onClose({ reason, takenOver: code === WS_CLOSE_RESUMED_ELSEWHERE, tokenExpired: code === WS_CLOSE_TOKEN_EXPIRED });
    }

    ws.onopen = () => {
      clearTimeout(timer);
      opened = true;
      resolve(transport);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') onMessage(ev.data, 'websocket');
    };
    ws.onerror = () => {
      if (!opened) {
        clearTimeout(timer);
        reject(new JamError('connect_failed', `WebSocket to ${url} failed`));
      }
    };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      if (!opened) reject(new JamError('connect_failed', `WebSocket to ${url} closed (${ev.code})`));
      finish(`socket closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`, ev.code);
    };
  });
}
