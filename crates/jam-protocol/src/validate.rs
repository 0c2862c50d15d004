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
/// control characters, no direction controls (which reorder what others see), and
/// something visible once invisible characters are set aside.
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
    if name.chars().any(is_direction_control) {
        return Err(ProtocolError::invalid(
            "name must not contain direction controls",
        ));
    }
    // Zero-width marks, fillers and blanks alone show as nothing (1.1).
    if name.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(ProtocolError::invalid(
            "name must have something visible in it",
        ));
    }
    Ok(Name {
        display: name.to_owned(),
        key: name_key(name),
    })
}

/// Characters that show as nothing, or as a blank that is not white space: Unicode
/// general category Cf (zero-width joiners, direction marks, …), the other default-ignorable
/// code points (fillers, variation selectors, tags, the combining grapheme joiner) and the
/// Braille blank U+2800.
fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format
        || matches!(
            c,
            '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// The bidirectional embedding, override and isolate controls and the direction marks:
/// in a name they reorder the text around it as others see it.
fn is_direction_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The Latin letter a small capital stands for (`ᴀ` → `a`); TS #39's confusables leave most
/// of them out, yet in a list of names they read as the letter.
fn small_capital_as_latin(c: char) -> char {
    match c {
        '\u{1D00}' => 'a',
        '\u{0299}' => 'b',
        '\u{1D04}' => 'c',
        '\u{1D05}' => 'd',
        '\u{1D07}' => 'e',
        '\u{A730}' => 'f',
        '\u{0262}' => 'g',
        '\u{029C}' => 'h',
        '\u{026A}' => 'i',
        '\u{1D0A}' => 'j',
        '\u{1D0B}' => 'k',
        '\u{029F}' => 'l',
        '\u{1D0D}' => 'm',
        '\u{0274}' => 'n',
        '\u{1D0F}' => 'o',
        '\u{1D18}' => 'p',
        '\u{A7AF}' => 'q',
        '\u{0280}' => 'r',
        '\u{A731}' => 's',
        '\u{1D1B}' => 't',
        '\u{1D1C}' => 'u',
        '\u{1D20}' => 'v',
        '\u{1D21}' => 'w',
        '\u{028F}' => 'y',
        '\u{1D22}' => 'z',
        other => other,
    }
}

/// What two names are compared by (1.1): invisible characters dropped, small capitals and
/// look-alike capitals of other scripts read as Latin letters, NFKC, Unicode lower case,
/// then the confusable skeleton of Unicode TS #39, so that names
/// that look alike (Cyrillic `Аna` and Latin `Ana`, Greek `Βen` and Latin `Ben`, small
/// capital `ᴀna` and `Ana`, `ﬁ` and `fi`) are the same name.
pub fn name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_security::confusable_detection::skeleton;
    let visible: String = name
        .chars()
        .filter(|&c| !is_invisible(c))
        .map(small_capital_as_latin)
        .map(capital_as_latin)
        .nfkc()
        .collect();
    skeleton(&visible.to_lowercase()).collect()
}

/// A capital of another script that looks like a Latin capital (Greek `Β`, `Η`, `Ρ`) as
/// that Latin letter, before lower case parts them (`β` looks like no Latin letter). Latin
/// letters are left alone: the skeleton reads capital `I` as `l`, which would part `ÉMILE`
/// from `émile`.
fn capital_as_latin(c: char) -> char {
    use unicode_security::confusable_detection::skeleton;
    if c.is_ascii() || !c.is_uppercase() {
        return c;
    }
    let mut utf8 = [0; 4];
    let mut latin = skeleton(c.encode_utf8(&mut utf8)).filter(|s| !is_invisible(*s));
    match (latin.next(), latin.next()) {
        (Some(l), None) if l.is_ascii_uppercase() => l,
        _ => c,
    }
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
        assert_eq!(key("\u{392}en"), key("Ben"), "Greek capital Beta");
        assert_eq!(key("\u{392}EN"), key("BEN"), "Greek capitals");
        assert_eq!(key("\u{1D00}na"), key("Ana"), "a small capital");
        assert_eq!(
            key("\u{299}\u{1D07}\u{274}"),
            key("Ben"),
            "small capitals only"
        );
        assert_eq!(key("Ben\u{2800}"), key("Ben"), "a Braille blank");
        assert_eq!(key("B\u{3164}en"), key("Ben"), "a Hangul filler");
        assert_eq!(key("Be\u{FE0F}n"), key("Ben"), "a variation selector");
        for reordering in [
            "\u{202E}neB",
            "Ben\u{202E}",
            "A\u{2066}na\u{2069}",
            "Ana\u{200F}",
        ] {
            assert!(validate_name(reordering).is_err(), "{reordering:?}");
        }
        for invisible in [
            "\u{200B}",
            "\u{200E}\u{200F}",
            "\u{2066}\u{2069}",
            " \u{FEFF} ",
            "\u{2800}\u{2800}",
            "\u{3164}",
            "\u{115F}\u{1160}",
            "\u{FFA0} \u{034F}",
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
