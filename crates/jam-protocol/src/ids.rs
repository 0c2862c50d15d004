//! Identifiers: [`RoomCode`] (six Crockford base32 characters, normalised from what a
//! person typed) and [`UserId`] (128 random bits). Generation uses the operating system's
//! secure generator; nothing here knows about rooms.

use std::fmt;
use std::sync::Arc;

use rand::Rng;
use serde::Serialize;

/// Length of a room code.
pub const ROOM_CODE_LEN: usize = 6;
/// Crockford base32 alphabet: digits and upper-case letters without I, L, O, U.
pub const ROOM_CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A canonical room code: six characters of the Crockford alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomCode([u8; ROOM_CODE_LEN]);

impl RoomCode {
    /// A fresh code from the operating system's secure generator (via `rand`'s `ThreadRng`,
    /// a CSPRNG seeded from the OS).
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut code = [0u8; ROOM_CODE_LEN];
        for c in &mut code {
            *c = ROOM_CODE_ALPHABET[rng.random_range(0..ROOM_CODE_ALPHABET.len())];
        }
        RoomCode(code)
    }

    /// Normalises what a person typed or read aloud: Unicode white space and `-` removed,
    /// upper-cased, `O` → `0`, `I`/`L` → `1`. `None` when the result is not a well-formed
    /// code (which the caller reports as `room_not_found`).
    pub fn normalize(input: &str) -> Option<Self> {
        let mut code = [0u8; ROOM_CODE_LEN];
        let mut len = 0;
        for ch in input.chars() {
            if ch.is_whitespace() || ch == '-' {
                continue;
            }
            let up = match ch.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !up.is_ascii() || !ROOM_CODE_ALPHABET.contains(&(up as u8)) || len == ROOM_CODE_LEN {
                return None;
            }
            code[len] = up as u8;
            len += 1;
        }
        (len == ROOM_CODE_LEN).then_some(RoomCode(code))
    }

    /// The canonical text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // The bytes are always drawn from the ASCII alphabet.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for RoomCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RoomCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An opaque user id: 128 random bits as 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

impl UserId {
    /// A fresh id from a cryptographically secure generator.
    pub fn generate() -> Self {
        let bits: u128 = rand::rng().random();
        UserId(format!("{bits:032x}").into())
    }

    /// An id as a client sent it back (in a resume token): 1 to 64 lowercase hex digits,
    /// the shape this server gives out.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| UserId(text.into()))
    }

    /// An id with the given text, for tests that need a known one.
    #[cfg(test)]
    pub(crate) fn from_text(text: &str) -> Self {
        UserId(text.into())
    }

    /// The id as text.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_codes_are_six_crockford_characters_and_unique_enough() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let code = RoomCode::generate();
            assert_eq!(code.as_str().len(), 6);
            assert!(code
                .as_str()
                .bytes()
                .all(|b| ROOM_CODE_ALPHABET.contains(&b)));
            assert_eq!(RoomCode::normalize(code.as_str()), Some(code.clone()));
            seen.insert(code);
        }
        assert!(seen.len() > 990, "codes repeat far too often");
    }

    #[test]
    fn room_code_normalisation() {
        let want = RoomCode::normalize("K7F3Q0").unwrap();
        for typed in ["k7f3q0", "K7F-3Q0", " k7f 3qo ", "K7F3QO", "k7f\u{2003}3q0"] {
            assert_eq!(RoomCode::normalize(typed), Some(want.clone()), "{typed:?}");
        }
        assert_eq!(RoomCode::normalize("abc-ili").unwrap().as_str(), "ABC111");
        for bad in ["", "K7F3Q", "K7F3Q00", "K7F3QU", "K7F3Q!", "K7F3QÉ"] {
            assert_eq!(RoomCode::normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_ids_read_back_only_in_their_own_shape() {
        let id = UserId::generate();
        assert_eq!(UserId::parse(id.as_str()), Some(id));
        for bad in ["", "ABC", "g", "a b", &"a".repeat(65), "é"] {
            assert_eq!(UserId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_ids_are_opaque_and_long_enough() {
        let a = UserId::generate();
        let b = UserId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
    }
}
