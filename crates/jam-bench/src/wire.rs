//! What the bench puts on the wire and reads back: a realistic note event
//! (`event:broadcast`, eventName `note`) whose payload carries the bench's stamp
//! `"jb":[sender,seq,intended_ns,actual_ns]`, and the cheap scan that finds that stamp in
//! a relayed envelope (JSON or MessagePack) without decoding the rest.

use std::fmt::Write as _;

/// The bench's fields in a relayed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Global sender index.
    pub sender: u32,
    /// The sender's sequence number, from 0.
    pub seq: u32,
    /// When the send was due, in nanoseconds since the bench's epoch.
    pub intended: u64,
    /// When it was actually handed to the transport, same clock.
    pub actual: u64,
}

/// A note as a musician's client would send it.
#[derive(Debug, Clone, Copy)]
pub struct Note {
    /// Note on (`true`) or off.
    pub on: bool,
    /// MIDI note number.
    pub note: u8,
    /// MIDI velocity.
    pub velocity: u8,
}

const INSTRUMENTS: [&str; 6] = ["piano", "bass", "drums", "guitar", "synth", "violin"];

/// Writes the sender's `event:broadcast` envelope into `out` (cleared first). The payload
/// object is padded with a `pad` string up to `payload_bytes` when it is shorter.
pub fn write_event(out: &mut String, room: &str, stamp: Stamp, note: Note, payload_bytes: usize) {
    out.clear();
    out.push_str("{\"event\":\"event:broadcast\",\"data\":{\"roomCode\":\"");
    out.push_str(room);
    out.push_str("\",\"eventName\":\"note\",\"payload\":");
    let payload_start = out.len();
    let _ = write!(
        out,
        "{{\"jb\":[{},{},{},{}],\"type\":\"{}\",\"note\":{},\"velocity\":{},\"channel\":0,\"instrument\":\"{}\"",
        stamp.sender,
        stamp.seq,
        stamp.intended,
        stamp.actual,
        if note.on { "noteOn" } else { "noteOff" },
        note.note,
        if note.on { note.velocity } else { 0 },
        INSTRUMENTS[stamp.sender as usize % INSTRUMENTS.len()],
    );
    // `,"pad":""` and the closing brace.
    let have = out.len() - payload_start + 1;
    const PAD_OVERHEAD: usize = 9;
    if payload_bytes >= have + PAD_OVERHEAD {
        out.push_str(",\"pad\":\"");
        for _ in 0..payload_bytes - have - PAD_OVERHEAD {
            out.push('x');
        }
        out.push('"');
    }
    out.push_str("}}}");
}

/// Finds the stamp in a relayed envelope, JSON or MessagePack; `None` for anything else
/// (presence messages, errors).
pub fn find_stamp(raw: &[u8]) -> Option<Stamp> {
    if raw.first() == Some(&b'{') {
        find_json(raw)
    } else {
        find_msgpack(raw)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_json(raw: &[u8]) -> Option<Stamp> {
    const KEY: &[u8] = b"\"jb\":[";
    let mut rest = &raw[find(raw, KEY)? + KEY.len()..];
    let mut v = [0u64; 4];
    for (i, slot) in v.iter_mut().enumerate() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 19 {
            return None;
        }
        *slot = rest[..digits]
            .iter()
            .fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
        let sep = *rest.get(digits)?;
        if sep != if i == 3 { b']' } else { b',' } {
            return None;
        }
        rest = &rest[digits + 1..];
    }
    stamp(v)
}

fn find_msgpack(raw: &[u8]) -> Option<Stamp> {
    // fixstr "jb", then a fixarray of 4.
    const KEY: &[u8] = &[0xa2, b'j', b'b', 0x94];
    let mut rest = &raw[find(raw, KEY)? + KEY.len()..];
    let mut v = [0u64; 4];
    for slot in &mut v {
        let (&marker, tail) = rest.split_first()?;
        let (value, used) = match marker {
            0x00..=0x7f => (u64::from(marker), 0),
            0xcc => (u64::from(*tail.first()?), 1),
            0xcd => (
                u64::from(u16::from_be_bytes(tail.get(..2)?.try_into().ok()?)),
                2,
            ),
            0xce => (
                u64::from(u32::from_be_bytes(tail.get(..4)?.try_into().ok()?)),
                4,
            ),
            0xcf => (u64::from_be_bytes(tail.get(..8)?.try_into().ok()?), 8),
            _ => return None,
        };
        *slot = value;
        rest = &tail[used..];
    }
    stamp(v)
}

fn stamp(v: [u64; 4]) -> Option<Stamp> {
    Some(Stamp {
        sender: u32::try_from(v[0]).ok()?,
        seq: u32::try_from(v[1]).ok()?,
        intended: v[2],
        actual: v[3],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload_bytes: usize) -> String {
        let mut s = String::new();
        let stamp = Stamp {
            sender: 12,
            seq: 345,
            intended: 1_234_567_890,
            actual: 1_234_568_000,
        };
        let note = Note {
            on: true,
            note: 60,
            velocity: 100,
        };
        write_event(&mut s, "K7F3QX", stamp, note, payload_bytes);
        s
    }

    #[test]
    fn the_event_is_a_valid_envelope_padded_to_size() {
        let text = sample(200);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "event:broadcast");
        assert_eq!(v["data"]["eventName"], "note");
        let payload = serde_json::to_string(&v["data"]["payload"]).unwrap();
        assert_eq!(payload.len(), 200);
        assert!(sample(10).len() < text.len());
    }

    #[test]
    fn the_stamp_is_found_in_json_and_msgpack() {
        let text = sample(100);
        let want = Some(Stamp {
            sender: 12,
            seq: 345,
            intended: 1_234_567_890,
            actual: 1_234_568_000,
        });
        assert_eq!(find_stamp(text.as_bytes()), want);
        let mp = jam_protocol::json_to_msgpack(text.as_bytes()).unwrap();
        assert_eq!(find_stamp(&mp), want);
        assert_eq!(find_stamp(b"{\"event\":\"session:user-joined\"}"), None);
    }
}
