//! MessagePack transcoding for WebTransport datagrams: incoming MessagePack becomes the
//! equivalent JSON text (so one reader handles both), and the server's JSON envelope is
//! transcoded token by token for receivers that asked for MessagePack.

use crate::error::ProtocolError;

/// How deep MessagePack may nest: so deep that the JSON it becomes is still within
/// serde_json's limit (127 arrays or objects), which the envelope reader applies; rmpv's
/// own default, 1,024, also costs stack to read, convert and drop. rmpv counts two steps
/// per array or map and one to three for the value at the bottom.
const MAX_DEPTH: usize = 2 * 127 + 1;

/// Converts a MessagePack datagram into the equivalent compact JSON text. Values with no
/// JSON form (binary, extension types, non-string map keys, NaN and infinities) are
/// refused.
pub fn msgpack_to_json(bytes: &[u8]) -> Result<String, ProtocolError> {
    let not_msgpack = || ProtocolError::invalid("datagram is neither JSON nor valid MessagePack");
    // rmpv reads the reserved marker 0xc1 as nil; MessagePack forbids it.
    if bytes.first() == Some(&0xc1) {
        return Err(not_msgpack());
    }
    let mut rest = bytes;
    let value =
        rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH).map_err(|_| not_msgpack())?;
    if !rest.is_empty() {
        return Err(not_msgpack());
    }
    let json = rmpv_to_json(value)?;
    serde_json::to_string(&json).map_err(|_| ProtocolError::invalid("unencodable MessagePack"))
}

fn rmpv_to_json(value: rmpv::Value) -> Result<serde_json::Value, ProtocolError> {
    use rmpv::Value as M;
    use serde_json::Value as J;
    let no_json =
        |what: &'static str| ProtocolError::invalid(format!("MessagePack {what} has no JSON form"));
    Ok(match value {
        M::Nil => J::Null,
        M::Boolean(b) => J::Bool(b),
        M::Integer(i) => {
            if let Some(u) = i.as_u64() {
                J::from(u)
            } else if let Some(s) = i.as_i64() {
                J::from(s)
            } else {
                return Err(no_json("integer"));
            }
        }
        M::F32(f) => serde_json::Number::from_f64(f64::from(f))
            .map(J::Number)
            .ok_or_else(|| no_json("NaN or infinity"))?,
        M::F64(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .ok_or_else(|| no_json("NaN or infinity"))?,
        M::String(s) => J::String(s.into_str().ok_or_else(|| no_json("non-UTF-8 string"))?),
        M::Binary(_) => return Err(no_json("binary")),
        M::Ext(..) => return Err(no_json("extension type")),
        M::Array(items) => J::Array(
            items
                .into_iter()
                .map(rmpv_to_json)
                .collect::<Result<_, _>>()?,
        ),
        M::Map(entries) => {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (k, v) in entries {
                let M::String(key) = k else {
                    return Err(no_json("non-string map key"));
                };
                let key = key.into_str().ok_or_else(|| no_json("non-UTF-8 map key"))?;
                map.insert(key, rmpv_to_json(v)?);
            }
            J::Object(map)
        }
    })
}

/// Converts compact JSON (as the server encodes it) to MessagePack, maps as maps, keys in
/// their JSON order. Streamed token by token (no `Value` tree in between).
pub fn json_to_msgpack(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len());
    let mut from = serde_json::Deserializer::from_slice(json);
    let mut to = rmp_serde::Serializer::new(&mut out).with_struct_map();
    serde_transcode::transcode(&mut from, &mut to).ok()?;
    from.end().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_round_trip_and_refusals() {
        let json = br#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":{"k":[1,-2,1.5,"s",null,true]}}}"#;
        let mp = json_to_msgpack(json).unwrap();
        let back = msgpack_to_json(&mp).unwrap();
        let a: serde_json::Value = serde_json::from_slice(json).unwrap();
        let b: serde_json::Value = serde_json::from_str(&back).unwrap();
        assert_eq!(a, b);
        // Maps stay maps with their keys in JSON order; integers take their smallest form.
        assert_eq!(
            json_to_msgpack(br#"{"b":1,"a":[300,-1]}"#).unwrap(),
            [0x82, 0xa1, b'b', 0x01, 0xa1, b'a', 0x92, 0xcd, 0x01, 0x2c, 0xff]
        );
        assert_eq!(json_to_msgpack(br#"{"a":1} x"#), None, "trailing bytes");
        assert_eq!(json_to_msgpack(br#"{"a":"#), None, "truncated");

        let bin = rmp_serde::to_vec(&serde_bytes_like()).unwrap();
        assert!(msgpack_to_json(&bin).is_err());
        let mut nan = Vec::new();
        rmp::encode::write_f64(&mut nan, f64::NAN).unwrap();
        assert!(msgpack_to_json(&nan).is_err());
        let mut intkey = Vec::new();
        rmpv::encode::write_value(
            &mut intkey,
            &rmpv::Value::Map(vec![(rmpv::Value::from(1), rmpv::Value::from(2))]),
        )
        .unwrap();
        assert!(msgpack_to_json(&intkey).is_err());
        assert!(msgpack_to_json(&[0xc1]).is_err());
        assert!(msgpack_to_json(&[0x92, 0x01]).is_err(), "truncated");
        assert!(msgpack_to_json(&[0x01, 0x02]).is_err(), "trailing bytes");
    }

    /// Found by the `envelope` fuzz target: without serde_json's `float_roundtrip`, JSON
    /// text such as `-20e200` was read one unit in the last place off, so a MessagePack
    /// receiver got another number than the one the sender wrote.
    #[test]
    fn json_floats_become_the_nearest_msgpack_float() {
        for text in [
            "-20e200",
            "2.2250738585072011e-308",
            "0.1",
            "1.7976931348623157e308",
        ] {
            let mp = json_to_msgpack(text.as_bytes()).unwrap();
            let mut rest = &mp[..];
            let got = rmpv::decode::read_value(&mut rest).unwrap();
            let want: f64 = text.parse().unwrap();
            assert_eq!(got.as_f64(), Some(want), "{text}");
            let back: serde_json::Value =
                serde_json::from_str(&msgpack_to_json(&mp).unwrap()).unwrap();
            assert_eq!(back.as_f64(), Some(want), "{text}");
        }
    }

    /// Found by the fuzz targets: MessagePack nested 1,024 deep before rmpv refused it;
    /// reading, converting and dropping such a value overflowed a 2 MiB thread stack (a
    /// debug build's; a tokio worker has 2 MiB too), and the JSON it became was deeper
    /// than serde_json reads. Now it stops where JSON does.
    #[test]
    fn deep_msgpack_is_refused_before_it_costs_stack() {
        let nested = |depth: usize, open: &[u8]| {
            let mut v = open.repeat(depth);
            v.push(0xc0);
            v
        };
        for open in [
            &[0x91][..],
            &[0x81, 0xa1, b'k'][..],
            &[0xdc, 0x00, 0x01][..],
        ] {
            let json = msgpack_to_json(&nested(126, open)).expect("126 deep");
            serde_json::from_str::<serde_json::Value>(&json).expect("and JSON reads it");
            assert!(msgpack_to_json(&nested(128, open)).is_err(), "{open:x?}");
            assert!(msgpack_to_json(&nested(1_000, open)).is_err(), "{open:x?}");
        }
    }

    fn serde_bytes_like() -> rmpv::Value {
        rmpv::Value::Binary(vec![1, 2, 3])
    }
}
