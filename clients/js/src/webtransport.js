// webtransport.js: the WebTransport transport.
//
// Owns: opening a WebTransport session with the server's certificate hashes
// (hexToBytes), its control stream (newline-delimited JSON) and its datagrams
// (one JSON envelope each), and reporting the session's end exactly once
// through `onClose` (`takenOver` when the server closed it because the seat
// was resumed on another connection, `tokenExpired` when it ended the seat
// because its sign-in token ran out). Like websocket.js it offers "envelope
// text in, envelope text out" and knows nothing about rooms or reconnecting.

import { JamError, withTimeout } from './errors.js';

/** The WebTransport close code of a seat resumed on another connection. */
const WT_CLOSE_RESUMED_ELSEWHERE = 5;
/** The WebTransport close code of a seat whose sign-in token ran out (docs/protocol.md §13). */
const WT_CLOSE_TOKEN_EXPIRED = 7;

const encoder = new TextEncoder();

/** Turns 64 hex digits into the bytes `serverCertificateHashes` wants. */
export function hexToBytes(hex) {
  const clean = String(hex).trim().replace(/^0x/i, '').replace(/[:\s]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-f]/i.test(clean)) {
    throw new JamError('connect_failed', `certificate hash is not hex: ${hex}`);
  }
  const bytes = new Uint8Array(clean.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/**
 * Opens a WebTransport session and its control stream.
 * Resolves to a transport object, or rejects if that takes over `timeoutMs`.
 */
export async function openWebTransport(info, { WebTransport, timeoutMs, fallbackMaxDatagramSize, onMessage, onClose }) {
  if (typeof WebTransport !== 'function') {
    throw new JamError('connect_failed', 'no WebTransport here');
  }
  const options = {};
  const hashes = (info.certificateHashes || []).map((h) => ({
    algorithm: h.algorithm || 'sha-256',
    value: hexToBytes(h.value),
  }));
  if (hashes.length) options.serverCertificateHashes = hashes;

  const wt = new WebTransport(info.url, options);
  // A rejected `closed` with nobody listening would be reported as unhandled.
  wt.closed.catch(() => {});
  let stream;
  try {
    stream = await withTimeout(
      wt.ready.then(() => wt.createBidirectionalStream()),
      timeoutMs,
      'opening WebTransport',
    );
  } catch (err) {
    try { wt.close(); } catch { /* never opened */ }
    throw err instanceof JamError ? err : new JamError('connect_failed', `WebTransport: ${err && err.message}`);
  }

  const writer = stream.writable.getWriter();
  const dg = wt.datagrams;
  const dgWriter = dg.createWritable ? dg.createWritable().getWriter() : dg.writable.getWriter();
  let closed = false;

  const transport = {
    kind: 'webtransport',
    hasDatagrams: true,
    get isClosed() {
      return closed;
    },
    get maxDatagramSize() {
      return Number.isFinite(dg.maxDatagramSize) && dg.maxDatagramSize > 0 ? dg.maxDatagramSize : fallbackMaxDatagramSize;
    },
    sendControl(text) {
      writer.write(encoder.encode(text + '\n')).catch(() => finish('control stream write failed'));
    },
    sendDatagram(bytes) {
      // A failed datagram is a lost note, never the end of the session.
      dgWriter.write(bytes).catch(() => {});
    },
    close(reason = 'closed by client') {
      try { wt.close({ closeCode: 0, reason }); } catch { /* already closed */ }
      finish(reason);
    },
  };

  function finish(reason, code = null) {
    if (closed) return;
    closed = true;
    try { wt.close(); } catch { /* already closed */ }
    onClose({ reason, takenOver: code === WT_CLOSE_RESUMED_ELSEWHERE, tokenExpired: code === WT_CLOSE_TOKEN_EXPIRED });
  }

  wt.closed.then(
    (info2) => finish((info2 && info2.reason) || 'session closed', info2 ? info2.closeCode : null),
    (err) => finish((err && err.message) || 'session failed'),
  );

  // Control stream: newline-delimited JSON.
  (async () => {
    const reader = stream.readable.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).replace(/\r$/, '');
          buffer = buffer.slice(nl + 1);
          if (line.trim()) onMessage(line, 'stream');
        }
      }
      finish('control stream ended');
    } catch (err) {
      finish((err && err.message) || 'control stream failed');
    }
  })();

  // Datagrams: one JSON envelope each.
  (async () => {
    const reader = dg.readable.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        onMessage(decoder.decode(value), 'datagram');
      }
    } catch {
      // The session's end is reported through `closed`.
    }
  })();

  return transport;
}

