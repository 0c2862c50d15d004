//! [`Participant`]: a member of a room as everyone in it sees it, in the server's
//! answers and presence events and in what a client reads.

use serde::{Deserialize, Serialize};

/// A member of a room as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Opaque user id.
    pub id: String,
    /// Display name, trimmed.
    pub name: String,
    /// Instrument, trimmed; `""` when none was given.
    pub instrument: String,
}
