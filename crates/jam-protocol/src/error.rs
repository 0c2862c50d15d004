//! Error codes and the error answer: [`ErrorCode`] is the wire `code` of an `error`
//! message (one spelling each, in [`ErrorCode::as_str`]); [`ProtocolError`] is a refusal
//! that is answered and leaves the connection usable. Deciding *when* to answer is the
//! server's session, not this module's.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The wire `code` of an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The message is not a valid envelope, names an unknown event, or a field is
    /// missing, of the wrong type or breaks its rule.
    InvalidMessage,
    /// Another participant of the room has that name (case-insensitively).
    NameTaken,
    /// The room has reached its size limit.
    RoomFull,
    /// The room code names no live room.
    RoomNotFound,
    /// The connection is already in a room.
    AlreadyInSession,
    /// The connection is not in the room the message names.
    NotInSession,
    /// The message is larger than the configured limit.
    PayloadTooLarge,
    /// The connection sends `event:broadcast` faster than its budget.
    RateLimited,
    /// The resume token is unknown, used, expired or for another room, or its seat
    /// cannot come back (its name was taken or its room filled meanwhile) (1.1).
    ResumeFailed,
    /// The server cannot take the request now: its room store is unreachable, so it
    /// creates no rooms (1.2).
    Unavailable,
    /// Another node owns the room; the error's `connect` says where it is (1.2).
    RoomElsewhere,
    /// Sign-in is on and the request carries no valid token (1.2, §13).
    Unauthorized,
    /// The token is valid but does not allow this: a room outside its `rooms`, a create
    /// with `create: false`, a refresh for another `sub` (1.2, §13).
    Forbidden,
    /// The seat's token expired without a refresh; the connection closes (1.2, §13).
    TokenExpired,
}

impl ErrorCode {
    /// Every code, for lookups by spelling.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidMessage,
        ErrorCode::NameTaken,
        ErrorCode::RoomFull,
        ErrorCode::RoomNotFound,
        ErrorCode::AlreadyInSession,
        ErrorCode::NotInSession,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::ResumeFailed,
        ErrorCode::Unavailable,
        ErrorCode::RoomElsewhere,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::TokenExpired,
    ];

    /// The wire spelling of the code: the only place it is written.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::AlreadyInSession => "already_in_session",
            ErrorCode::NotInSession => "not_in_session",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ResumeFailed => "resume_failed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::RoomElsewhere => "room_elsewhere",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TokenExpired => "token_expired",
        }
    }
}

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(UnknownErrorCode)
    }
}

/// A `code` that names no [`ErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code")]
pub struct UnknownErrorCode;

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::unknown_variant(&text, &[]))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol failure that answers the client with an `error` message; the connection
/// stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// What clients branch on.
    pub code: ErrorCode,
    /// What people read.
    pub message: Cow<'static, str>,
}

impl ProtocolError {
    /// An error with a fixed message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `invalid_message` with the given explanation.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidMessage, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_one_spelling() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
        }
        assert!(serde_json::from_str::<ErrorCode>("\"nope\"").is_err());
    }
}
