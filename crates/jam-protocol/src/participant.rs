//! [`Participant`]: a member of a room as everyone in it sees it, in the server's
//! answers and presence events and in what a client reads, with its [`Status`].

use serde::{Deserialize, Serialize};

/// A member of a room as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// Opaque user id.
    pub id: String,
    /// Display name, trimmed.
    pub name: String,
    /// Instrument, trimmed; `""` when none was given.
    pub instrument: String,
    /// Whether the seat has a live connection (1.1; a version 1 peer sends none, read as
    /// active).
    #[serde(default)]
    pub status: Status,
    /// The seat's round-trip time to the server in whole ms, `None` until measured
    /// (1.1, §8).
    #[serde(default)]
    pub rtt_ms: Option<u32>,
}

/// A seat's presence (1.1, §6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Connected.
    #[default]
    Active,
    /// Its connection ended without a leave; the seat is held for the resume window.
    Away,
}
