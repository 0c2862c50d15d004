//! Incoming EVENT packets socketioxide could not read, rewritten before it sees them: in a
//! polling body, and below tungstenite on an upgraded socket ([`EventCheck`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest Engine.IO payload (a polling request body, a WebSocket message): the
/// WebSocket endpoint's frame limit. Larger events up to it answer `payload_too_large`.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The event name an EVENT packet that socketioxide could not read is rewritten to
/// ([`checked_packet`]): socketioxide ends the session on an event whose first element
/// it cannot read as a name, so such a packet reaches it as this event instead, and
/// [`Conn::receive`](super::inbound::Conn::receive) answers it `invalid_message` like any other packet that is not
/// `[name, data]`. It needs no escape (socketioxide reads names only without escapes)
/// and is no event of the protocol.
const MALFORMED: &str = "[malformed]";

/// An Engine.IO packet (`4` + a Socket.IO packet) as socketioxide may read it: an EVENT
/// packet (`2`, then an optional `/namespace,`, an optional acknowledgement id) whose
/// data is not a JSON array starting with a name is rewritten to the EVENT
/// `[`[`MALFORMED`]`]` with the same namespace and acknowledgement id, and so is a
/// message with no Socket.IO packet type or an unknown one; everything else is `None`
/// (passed on as it is). The packet is read as socketioxide's parser reads it
/// (`socketioxide-parser-common`, `de.rs`: `read_nsp`, `read_ack`; `value/de.rs`:
/// `read_event`).
fn checked_packet(packet: &str) -> Option<String> {
    let sio = packet.strip_prefix('4')?;
    // No Socket.IO packet type at all, or none socketioxide knows: it would end the
    // session on these too (`de.rs`, `deserialize_packet`).
    if !sio.starts_with(|c: char| ('0'..='6').contains(&c)) {
        return Some(format!("42[\"{MALFORMED}\"]"));
    }
    let rest = sio.strip_prefix('2')?;
    let (ns, rest) = if rest.starts_with('/') {
        match rest.find(',') {
            Some(comma) => (&rest[..comma], &rest[comma + 1..]),
            None => (rest, ""),
        }
    } else {
        ("", rest)
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = match rest.as_bytes().get(digits) {
        Some(b'[' | b'{') if digits > 0 => rest[..digits].parse::<i64>().ok(),
        _ => None,
    };
    let data = &rest[digits..];
    if event_name_readable(data) {
        return None;
    }
    let ns = if ns.is_empty() {
        String::new()
    } else {
        format!("{ns},")
    };
    let ack = ack.map(|id| id.to_string()).unwrap_or_default();
    Some(format!("42{ns}{ack}[\"{MALFORMED}\"]"))
}

/// Whether socketioxide reads `data` as an event: a JSON array of valid JSON whose first
/// element is a string without escapes (it borrows the name).
fn event_name_readable(data: &str) -> bool {
    struct FirstName;
    impl<'de> serde::de::Visitor<'de> for FirstName {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("[name, ...]")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            seq.next_element::<&'de str>()?
                .ok_or_else(|| serde::de::Error::custom("no name"))?;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(data);
    serde::Deserializer::deserialize_seq(&mut de, FirstName).is_ok()
}

/// An Engine.IO polling payload (packets separated by the record separator) with every
/// packet passed through [`checked_packet`]; `None` when none changed.
pub(super) fn checked_payload(payload: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut changed = false;
    let packets: Vec<std::borrow::Cow<'_, str>> = text
        .split('\u{1e}')
        .map(|p| match checked_packet(p) {
            Some(rewritten) => {
                changed = true;
                rewritten.into()
            }
            None => p.into(),
        })
        .collect();
    changed.then(|| packets.join("\u{1e}").into_bytes())
}

/// The bytes a client sends on a socket upgraded to Engine.IO over WebSocket, with each
/// EVENT packet socketioxide could not read rewritten by `checked_packet`, below
/// tungstenite: socketioxide would end the session on one, and nothing above the socket
/// sees a WebSocket message before socketioxide does. The server wraps every HTTP socket;
/// until [`EventCheck::switch`] is set (an upgrade request to [`PATH`](super::PATH)) it passes bytes
/// through untouched, and it checks only a stream whose upgrade request ended its last
/// read (a client that sends frames before the handshake is answered is not checked).
///
/// A whole unfragmented, masked text frame up to [`MAX_PAYLOAD_BYTES`] is read before it
/// is passed on (tungstenite reads it whole too); every other frame (control, binary,
/// fragmented, larger) streams through as it comes. A rewritten frame goes on with a
/// zero mask key.
#[derive(Debug)]
pub struct EventCheck<T> {
    io: T,
    on: Arc<AtomicBool>,
    /// Whether the stream is checked: `None` until the first read after the switch.
    checking: Option<bool>,
    /// The last bytes read before the switch.
    tail: [u8; 4],
    /// Bytes read and not yet passed on; the first `ready` of them are checked.
    buf: bytes::BytesMut,
    ready: usize,
    /// Bytes of a frame passed through as they come that are still to come.
    passing: u64,
}

impl<T> EventCheck<T> {
    /// Wraps `io`, passing its bytes through until switched on.
    pub fn new(io: T) -> Self {
        EventCheck {
            io,
            on: Arc::new(AtomicBool::new(false)),
            checking: None,
            tail: [0; 4],
            buf: bytes::BytesMut::new(),
            ready: 0,
            passing: 0,
        }
    }

    /// The switch that turns checking on (for good) from the next read.
    pub fn switch(&self) -> Arc<AtomicBool> {
        self.on.clone()
    }

    /// Moves the bytes at the start of `buf` that can be passed on into `ready`, rewriting
    /// a malformed event; `false` when more bytes must be read first.
    fn advance(&mut self) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        if self.passing > 0 {
            let n = self.passing.min(self.buf.len() as u64);
            self.passing -= n;
            self.ready = n as usize;
            return true;
        }
        let Some(frame) = FrameHead::read(&self.buf) else {
            return false;
        };
        let checked = frame.fin
            && frame.opcode == 1
            && frame.mask.is_some()
            && frame.len <= MAX_PAYLOAD_BYTES as u64;
        let total = (frame.head_len as u64).saturating_add(frame.len);
        if !checked {
            let n = total.min(self.buf.len() as u64);
            self.ready = n as usize;
            self.passing = total - n;
            return true;
        }
        let total = total as usize;
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return false;
        }
        let mut payload = self.buf[frame.head_len..total].to_vec();
        if let Some(mask) = frame.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        let rewritten = std::str::from_utf8(&payload).ok().and_then(checked_packet);
        match rewritten {
            None => self.ready = total,
            Some(packet) => {
                let rest = self.buf.split_off(total);
                self.buf.clear();
                let len = packet.len();
                self.buf.extend_from_slice(&[0x81]);
                if len < 126 {
                    self.buf.extend_from_slice(&[0x80 | len as u8]);
                } else if len <= usize::from(u16::MAX) {
                    self.buf.extend_from_slice(&[0x80 | 126]);
                    self.buf.extend_from_slice(&(len as u16).to_be_bytes());
                } else {
                    self.buf.extend_from_slice(&[0x80 | 127]);
                    self.buf.extend_from_slice(&(len as u64).to_be_bytes());
                }
                self.buf.extend_from_slice(&[0; 4]);
                self.buf.extend_from_slice(packet.as_bytes());
                self.ready = self.buf.len();
                self.buf.extend_from_slice(&rest);
            }
        }
        true
    }
}

/// A WebSocket frame header (RFC 6455 §5.2).
struct FrameHead {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    head_len: usize,
}

impl FrameHead {
    /// The header at the start of `bytes`, or `None` if it is not all there yet.
    fn read(bytes: &[u8]) -> Option<FrameHead> {
        let (&b0, rest) = bytes.split_first()?;
        let &b1 = rest.first()?;
        let (len, mut at) = match b1 & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let key: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
            at += 4;
            Some(key)
        } else {
            None
        };
        Some(FrameHead {
            // The reserved bits must be clear for the frame to be checked.
            fin: b0 & 0xf0 == 0x80,
            opcode: b0 & 0x0f,
            mask,
            len,
            head_len: at,
        })
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EventCheck<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.checking.is_none() {
            if !this.on.load(Ordering::Relaxed) {
                let before = out.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, out))?;
                let read = &out.filled()[before..];
                for &b in read.iter().rev().take(4).rev() {
                    this.tail.rotate_left(1);
                    this.tail[3] = b;
                }
                return Poll::Ready(Ok(()));
            }
            this.checking = Some(&this.tail == b"\r\n\r\n");
        }
        if this.checking == Some(false) {
            return Pin::new(&mut this.io).poll_read(cx, out);
        }
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf.split_to(n));
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                continue;
            }
            if this.buf.capacity() - this.buf.len() < 4096 {
                this.buf.reserve(8192);
            }
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.io),
                cx,
                &mut this.buf
            ))?;
            if n == 0 {
                // The end of the stream: what is left (an unfinished frame) goes on as
                // it is, for tungstenite to refuse.
                this.ready = this.buf.len();
                this.passing = 0;
                if this.ready == 0 {
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EventCheck<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Whether `args` is the event [`checked_packet`] left for a malformed one.
pub(super) fn is_malformed(args: &str) -> bool {
    args.strip_prefix("[\"")
        .and_then(|rest| rest.strip_prefix(MALFORMED))
        .is_some_and(|rest| rest == "\"]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_socketioxide_cannot_read_become_the_malformed_event() {
        for (packet, want) in [
            (r#"42"hello""#, r#"42["[malformed]"]"#),
            ("42{}", r#"42["[malformed]"]"#),
            ("42[]", r#"42["[malformed]"]"#),
            ("42[1,2]", r#"42["[malformed]"]"#),
            ("42[", r#"42["[malformed]"]"#),
            (r#"42["x","#, r#"42["[malformed]"]"#),
            (r#"42["a\"b",1]"#, r#"42["[malformed]"]"#),
            ("42", r#"42["[malformed]"]"#),
            ("4217[1]", r#"4217["[malformed]"]"#),
            (r#"4217"x""#, r#"42["[malformed]"]"#),
            ("42/room,9{}", r#"42/room,9["[malformed]"]"#),
            ("42/room", r#"42/room,["[malformed]"]"#),
            ("4", r#"42["[malformed]"]"#),
            ("49[]", r#"42["[malformed]"]"#),
            ("4x", r#"42["[malformed]"]"#),
        ] {
            assert_eq!(checked_packet(packet).as_deref(), Some(want), "{packet}");
            let args = want.trim_start_matches(|c: char| c != '[');
            assert!(is_malformed(args), "{want}");
        }
        for fine in [
            r#"42["session:create",{"name":"A"}]"#,
            r#"4212["x"]"#,
            r#"42/room,["x",1]"#,
            "40",
            "41",
            "431[{}]",
            "3",
        ] {
            assert_eq!(checked_packet(fine), None, "{fine}");
        }
        assert_eq!(
            checked_payload(b"42[\"a\",1]\x1e421{}\x1e3").as_deref(),
            Some(&b"42[\"a\",1]\x1e421[\"[malformed]\"]\x1e3"[..])
        );
        assert_eq!(checked_payload(b"42[\"a\",1]\x1e3"), None);
    }

    /// A client frame: masked with a key that is not zero, `fin` and opcode `op`.
    fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![if fin { 0x80 | op } else { op }];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    #[tokio::test]
    async fn an_upgraded_stream_reaches_tungstenite_with_malformed_events_rewritten() {
        use futures_util::StreamExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_tungstenite::tungstenite::{protocol::Role, Message};

        let big = format!(r#"42["x","{}"]"#, "y".repeat(70_000));
        let mut bytes = b"GET /socket.io/ HTTP/1.1\r\n\r\n".to_vec();
        let head = bytes.len();
        bytes.extend(frame(true, 1, br#"421{"a":1}"#));
        bytes.extend(frame(true, 9, b"ping"));
        bytes.extend(frame(true, 1, br#"42["ok",1]"#));
        bytes.extend(frame(false, 1, b"42"));
        bytes.extend(frame(true, 0, b"{}"));
        bytes.extend(frame(true, 1, big.as_bytes()));
        bytes.extend(frame(true, 1, &[b'4', b'2', b'"'].repeat(100)));
        // Read through a small pipe, so frames come in pieces.
        let (mut near, far) = tokio::io::duplex(61);
        let writer = tokio::spawn(async move {
            near.write_all(&bytes).await.unwrap();
            near
        });
        let mut checked = EventCheck::new(far);
        let mut request = vec![0; head];
        checked.read_exact(&mut request).await.unwrap();
        checked.switch().store(true, Ordering::Relaxed);
        let ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(checked, Role::Server, None).await;
        let got: Vec<Message> = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ws.take(6).map(Result::unwrap).collect(),
        )
        .await
        .expect("six messages");
        drop(writer.await.unwrap());
        let texts: Vec<String> = got
            .iter()
            .filter_map(|m| m.to_text().ok().map(str::to_owned))
            .collect();
        assert_eq!(texts[0], r#"421["[malformed]"]"#);
        assert!(got[1].is_ping());
        assert_eq!(texts[2], r#"42["ok",1]"#);
        // A fragmented message passes as it came.
        assert_eq!(texts[3], "42{}");
        assert_eq!(texts[4], big);
        assert_eq!(texts[5], r#"42["[malformed]"]"#);
    }
}
