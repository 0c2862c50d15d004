//! The room's shared tempo (PROTOCOL.md §9) as it travels in messages. Every room has one
//! from its creation; until `tempo:set` exists it is the default.

use serde::{Deserialize, Serialize};

/// Beats per minute of a new room.
pub const DEFAULT_BPM: f64 = 120.0;
/// Beats per bar of a new room.
pub const DEFAULT_BEATS_PER_BAR: u32 = 4;

/// `tempo = {bpm, beatsPerBar, originTime, originBeat, setBy}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tempo {
    /// Beats per minute.
    pub bpm: f64,
    /// Beats per bar.
    pub beats_per_bar: u32,
    /// Server time (ms) of the beat `origin_beat`.
    pub origin_time: f64,
    /// The beat number at `origin_time`.
    pub origin_beat: f64,
    /// Who set it; `None` for the room's default.
    pub set_by: Option<String>,
}

impl Tempo {
    /// The default tempo of a room created at server time `created` (ms).
    pub fn default_at(created: f64) -> Self {
        Tempo {
            bpm: DEFAULT_BPM,
            beats_per_bar: DEFAULT_BEATS_PER_BAR,
            origin_time: created,
            origin_beat: 0.0,
            set_by: None,
        }
    }
}
