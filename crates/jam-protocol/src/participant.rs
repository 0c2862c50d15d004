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
    /// Its connection ended without a leave (the seat is held for the resume window), or
    /// it fell silent while its connection stays open (1.2, §11).
    Away,
}

/// Why a seat turned away: the `reason` of `session:user-away` (1.2, §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AwayReason {
    /// Its connection ended without a leave.
    Disconnected,
    /// Its connection stays open, but nothing has arrived from it for the silence limit.
    Silent,
}
