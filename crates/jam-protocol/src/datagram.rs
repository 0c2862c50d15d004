//! WebTransport datagrams as bytes: which [`Encoding`] a datagram's payload is in (JSON
//! starts with `{`, anything else is read as MessagePack), and the QUIC variable-length
//! integer that heads each datagram with its session's quarter stream id (RFC 9297,
//! RFC 9000 §16). Sending and receiving them is the transports' job.

/// How a member wants its datagrams encoded (the `?encoding=` of its session URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Compact JSON (the default).
    Json = 0,
    /// The same envelope as a MessagePack map.
    MsgPack = 1,
}

impl Encoding {
    /// The encoding of a received datagram payload: JSON when it starts with `{`, else
    /// MessagePack (whose envelope is a map, and no map starts with `{`, byte 0x7b).
    #[inline]
    pub fn sniff(payload: &[u8]) -> Encoding {
        if payload.first() == Some(&b'{') {
            Encoding::Json
        } else {
            Encoding::MsgPack
        }
    }

    /// The value of the `encoding` query parameter, `None` for an unknown one.
    pub fn from_query(value: Option<&str>) -> Option<Encoding> {
        match value {
            None | Some("json") => Some(Encoding::Json),
            Some("msgpack") => Some(Encoding::MsgPack),
            Some(_) => None,
        }
    }
}

/// Decodes a QUIC variable-length integer at the start of `b`: its value and length.
pub fn parse_varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let mut v = u64::from(first & 0x3f);
    for &byte in b.get(1..len)? {
        v = v << 8 | u64::from(byte);
    }
    Some((v, len))
}

/// Encodes `v` as a QUIC variable-length integer (values above 2^62 - 1 are cut to 62 bits).
pub fn quic_varint(v: u64) -> Vec<u8> {
    match v {
        0..=0x3f => vec![v as u8],
        0x40..=0x3fff => ((v as u16) | 0x4000).to_be_bytes().to_vec(),
        0x4000..=0x3fff_ffff => ((v as u32) | 0x8000_0000).to_be_bytes().to_vec(),
        _ => ((v & 0x3fff_ffff_ffff_ffff) | 0xc000_0000_0000_0000)
            .to_be_bytes()
            .to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_rfc_9000_examples() {
        assert_eq!(quic_varint(37), [0x25]);
        assert_eq!(quic_varint(15_293), [0x7b, 0xbd]);
        assert_eq!(quic_varint(494_878_333), [0x9d, 0x7f, 0x3e, 0x7d]);
        assert_eq!(
            quic_varint(151_288_809_941_952_652),
            [0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]
        );
        for v in [0, 37, 63, 64, 15_293, 494_878_333, 151_288_809_941_952_652] {
            let mut b = quic_varint(v);
            let len = b.len();
            b.extend_from_slice(b"payload");
            assert_eq!(parse_varint(&b), Some((v, len)));
        }
        // A two-byte encoding of 37 is legal (RFC 9000 §16 allows longer encodings).
        assert_eq!(parse_varint(&[0x40, 0x25]), Some((37, 2)));
        assert_eq!(parse_varint(&[0x7b]), None);
        assert_eq!(parse_varint(&[]), None);
    }

    #[test]
    fn sniffing_and_query() {
        assert_eq!(Encoding::sniff(br#"{"event":1}"#), Encoding::Json);
        assert_eq!(Encoding::sniff(&[0x82]), Encoding::MsgPack);
        assert_eq!(Encoding::sniff(&[]), Encoding::MsgPack);
        assert_eq!(Encoding::from_query(None), Some(Encoding::Json));
        assert_eq!(
            Encoding::from_query(Some("msgpack")),
            Some(Encoding::MsgPack)
        );
        assert_eq!(Encoding::from_query(Some("cbor")), None);
    }
}
