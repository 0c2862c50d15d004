//! How long a WebSocket peer has kept a message unfinished. [`Watched`] wraps the
//! upgraded socket below tungstenite and reads the frame headers (only the headers: the
//! payload is skipped, not copied) as the bytes go by, so the reader knows when a data
//! message began and that its last frame has not come yet. tungstenite bounds the size of
//! a message it reassembles but not the time: a peer that trickles fragments, with pings
//! between them so that it never looks silent, would otherwise hold that memory for as
//! long as it likes. This module only measures; `ws.rs` decides.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When the data message being received began, if one is unfinished. Shared between the
/// socket wrapper (which writes it) and the connection's reader (which reads it).
#[derive(Debug)]
pub struct Unfinished {
    base: Instant,
    /// µs after `base` at which the unfinished message began; [`NONE`] when there is none.
    since_us: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Unfinished {
    fn new() -> Self {
        Unfinished {
            base: Instant::now(),
            since_us: AtomicU64::new(NONE),
        }
    }

    /// When the unfinished data message began, or `None` when none is being received.
    pub fn since(&self) -> Option<Instant> {
        match self.since_us.load(Ordering::Relaxed) {
            NONE => None,
            us => Some(self.base + Duration::from_micros(us)),
        }
    }

    fn set(&self, began: bool) {
        let us = if began {
            u64::try_from(self.base.elapsed().as_micros()).unwrap_or(NONE - 1)
        } else {
            NONE
        };
        self.since_us.store(us, Ordering::Relaxed);
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Inside a frame header: the bytes so far (at most 14: 2, an 8-byte length, a mask).
    Head { bytes: [u8; 14], have: usize },
    /// Inside a payload: bytes left, and whether the frame ends a data message.
    Payload { left: u64, ends_message: bool },
}

/// Reads frame headers from the bytes a peer sends (RFC 6455 §5.2) to follow data
/// messages: one begins with the first frame of opcode text, binary or continuation and
/// ends with the payload of a data frame whose FIN bit is set. Control frames between
/// fragments change nothing. A malformed stream is tungstenite's to refuse; this only
/// has to stay bounded, which it does (no buffer beyond one header).
#[derive(Debug, Clone, Copy)]
struct Scanner {
    state: State,
    in_message: bool,
}

impl Scanner {
    fn new() -> Self {
        Scanner {
            state: State::Head {
                bytes: [0; 14],
                have: 0,
            },
            in_message: false,
        }
    }

    /// Header length once its first two bytes are known.
    fn head_len(b1: u8) -> usize {
        let extended = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    /// Feeds bytes read from the peer; returns `Some(true)` if a data message began and
    /// is still unfinished at the end of them, `Some(false)` if none is unfinished where
    /// one was, `None` if nothing changed.
    fn feed(&mut self, mut bytes: &[u8]) -> Option<bool> {
        let before = self.in_message;
        while !bytes.is_empty() {
            match &mut self.state {
                State::Head { bytes: head, have } => {
                    let need = if *have < 2 {
                        2
                    } else {
                        Scanner::head_len(head[1])
                    };
                    let take = (need - *have).min(bytes.len());
                    head[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have < 2 || *have < Scanner::head_len(head[1]) {
                        continue;
                    }
                    let (b0, b1) = (head[0], head[1]);
                    let left = match b1 & 0x7f {
                        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
                        127 => u64::from_be_bytes(head[2..10].try_into().unwrap_or([0; 8])),
                        n => u64::from(n),
                    };
                    let data = b0 & 0x0f < 8;
                    if data {
                        self.in_message = true;
                    }
                    self.state = State::Payload {
                        left,
                        ends_message: data && b0 & 0x80 != 0,
                    };
                }
                State::Payload { left, .. } => {
                    let take = (*left).min(bytes.len() as u64);
                    *left -= take;
                    bytes = &bytes[take as usize..];
                }
            }
            if let State::Payload {
                left: 0,
                ends_message,
            } = self.state
            {
                if ends_message {
                    self.in_message = false;
                }
                self.state = State::Head {
                    bytes: [0; 14],
                    have: 0,
                };
            }
        }
        // A frame of length 0 read in full leaves the state at Head: done above.
        (self.in_message != before).then_some(self.in_message)
    }
}

/// A socket whose incoming WebSocket frames are followed by an [`Unfinished`].
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    scanner: Scanner,
    unfinished: Arc<Unfinished>,
}

impl<S> Watched<S> {
    /// Wraps `inner`, whose first byte read is the first byte of a frame (the handshake
    /// is over); the [`Unfinished`] it reports to.
    pub fn new(inner: S) -> (Self, Arc<Unfinished>) {
        let unfinished = Arc::new(Unfinished::new());
        let watched = Watched {
            inner,
            scanner: Scanner::new(),
            unfinished: unfinished.clone(),
        };
        (watched, unfinished)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if let Some(began) = this.scanner.feed(&buf.filled()[before..]) {
                this.unfinished.set(began);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame: `fin`, `opcode`, `len` payload bytes.
    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=65535 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    /// Feeds `bytes` one byte at a time and in one piece; both must agree.
    fn feed_both(bytes: &[u8]) -> (Option<bool>, bool) {
        let mut whole = Scanner::new();
        let at_once = whole.feed(bytes);
        let mut bytewise = Scanner::new();
        for b in bytes {
            bytewise.feed(std::slice::from_ref(b));
        }
        assert_eq!(whole.in_message, bytewise.in_message);
        (at_once, whole.in_message)
    }

    #[test]
    fn whole_messages_leave_nothing_unfinished() {
        let mut bytes = frame(true, 1, 5);
        bytes.extend(frame(true, 9, 3)); // ping
        bytes.extend(frame(true, 2, 70_000));
        bytes.extend(frame(true, 1, 0));
        bytes.extend(frame(true, 1, 300));
        assert_eq!(feed_both(&bytes), (None, false));
    }

    #[test]
    fn fragments_with_pings_between_stay_unfinished_until_the_last() {
        let mut bytes = frame(false, 1, 1000);
        bytes.extend(frame(true, 9, 125)); // ping between fragments
        bytes.extend(frame(false, 0, 1000));
        bytes.extend(frame(true, 10, 0)); // pong
        assert_eq!(feed_both(&bytes), (Some(true), true));
        let mut s = Scanner::new();
        s.feed(&bytes);
        assert_eq!(
            s.feed(&frame(true, 0, 10)),
            Some(false),
            "the final fragment"
        );
        assert_eq!(s.feed(&frame(true, 9, 0)), None);
    }

    #[test]
    fn a_frame_whose_payload_is_still_coming_is_unfinished() {
        let f = frame(true, 1, 200);
        assert_eq!(feed_both(&f[..50]), (Some(true), true));
        assert_eq!(feed_both(&f), (None, false));
    }
}
