//! Field rules of docs/protocol.md §3: display names, instruments and event names. Each
//! validator trims and checks one field and returns a [`ProtocolError`] naming the rule it
//! broke; the envelope's reader calls them.

use crate::error::ProtocolError;

/// Longest display name, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest instrument, in Unicode scalar values.
pub const MAX_INSTRUMENT_CHARS: usize = 32;
/// Longest `eventName`, in Unicode scalar values.
pub const MAX_EVENT_NAME_CHARS: usize = 64;

/// A validated display name and its case-folded key for uniqueness checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The name as shown (trimmed).
    pub display: String,
    /// Unicode lower case of `display`, compared for `name_taken`.
    pub key: String,
}

/// Validates a display name: trimmed of Unicode white space, 1 to 32 characters, no
/// control characters.
pub fn validate_name(raw: &str) -> Result<Name, ProtocolError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(ProtocolError::invalid("name must not be empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(ProtocolError::invalid("name is longer than 32 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ProtocolError::invalid(
            "name must not contain control characters",
        ));
    }
    // Zero-width and direction marks (Unicode Cf) alone show as nothing (1.1).
    if name.chars().all(|c| c.is_whitespace() || is_format(c)) {
        return Err(ProtocolError::invalid(
            "name must have something visible in it",
        ));
    }
    Ok(Name {
        display: name.to_owned(),
        key: name_key(name),
    })
}

/// Unicode general category Cf (format): zero-width joiners, direction marks, ….
fn is_format(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format
}

/// What two names are compared by (1.1): invisible format characters dropped, NFKC,
/// Unicode lower case, then the confusable skeleton of Unicode TS #39, so that names that
/// look alike (Cyrillic `Аna` and Latin `Ana`, `ﬁ` and `fi`) are the same name.
pub fn name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_security::confusable_detection::skeleton;
    let visible: String = name.chars().filter(|&c| !is_format(c)).nfkc().collect();
    skeleton(&visible.to_lowercase()).collect()
}

/// Validates an instrument: missing or `null` is `""`; trimmed; at most 32 characters;
/// no control characters.
pub fn validate_instrument(raw: Option<&str>) -> Result<String, ProtocolError> {
    let instrument = raw.unwrap_or("").trim();
    if instrument.chars().count() > MAX_INSTRUMENT_CHARS {
        return Err(ProtocolError::invalid(
            "instrument is longer than 32 characters",
        ));
    }
    if instrument.chars().any(char::is_control) {
        return Err(ProtocolError::invalid(
            "instrument must not contain control characters",
        ));
    }
    Ok(instrument.to_owned())
}

/// Validates an `eventName`: 1 to 64 characters.
pub fn validate_event_name(raw: &str) -> Result<(), ProtocolError> {
    let n = raw.chars().count();
    if n == 0 || n > MAX_EVENT_NAME_CHARS {
        return Err(ProtocolError::invalid(
            "eventName must be 1 to 64 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_are_one_name_and_invisible_ones_are_refused() {
        let key = |s: &str| validate_name(s).unwrap().key;
        assert_eq!(key("\u{410}na"), key("Ana"), "Cyrillic А");
        assert_eq!(key("ﬁfi"), key("fifi"), "a ligature");
        assert_eq!(key("A\u{200B}na"), key("Ana"), "a zero-width space");
        assert_eq!(key("ÁNA"), key("ána"));
        assert_ne!(key("Ana"), key("Anna"));
        assert_eq!(validate_name("A\u{200B}na").unwrap().display, "A\u{200B}na");
        for invisible in [
            "\u{200B}",
            "\u{200E}\u{200F}",
            "\u{2066}\u{2069}",
            " \u{FEFF} ",
        ] {
            assert!(validate_name(invisible).is_err(), "{invisible:?}");
        }
    }

    #[test]
    fn name_rules() {
        assert_eq!(validate_name("  Ana \u{3000}").unwrap().display, "Ana");
        assert_eq!(
            validate_name("ÁNA").unwrap().key,
            validate_name("ána").unwrap().key
        );
        assert_eq!(
            validate_name(&"é".repeat(32))
                .unwrap()
                .display
                .chars()
                .count(),
            32
        );
        assert!(validate_name(&"é".repeat(33)).is_err());
        assert!(validate_name("   ").is_err());
        assert!(validate_name("a\u{7}b").is_err());
        assert!(validate_name("a\nb").is_err());
    }

    #[test]
    fn instrument_rules() {
        assert_eq!(validate_instrument(None).unwrap(), "");
        assert_eq!(validate_instrument(Some(" bass ")).unwrap(), "bass");
        assert!(validate_instrument(Some(&"x".repeat(33))).is_err());
        assert!(validate_instrument(Some("a\u{1b}")).is_err());
    }
}
