//! The room's shared tempo (docs/protocol.md §9) and its timeline arithmetic: the beat at a
//! server time, bar lines, and where a change takes effect so that nobody's beat jumps.
//! Pure functions of numbers; the server and both client libraries use the same rules.

use serde::{Deserialize, Serialize};

/// Beats per minute of a new room.
pub const DEFAULT_BPM: f64 = 120.0;
/// Beats per bar of a new room.
pub const DEFAULT_BEATS_PER_BAR: u32 = 4;
/// Slowest tempo a room may be set to.
pub const MIN_BPM: f64 = 20.0;
/// Fastest tempo a room may be set to.
pub const MAX_BPM: f64 = 300.0;
/// Most beats in a bar.
pub const MAX_BEATS_PER_BAR: u32 = 16;
/// A change takes effect on a bar line at least this long (ms) after the server got it.
pub const CHANGE_LEAD_MS: f64 = 250.0;

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

    /// Milliseconds per beat.
    pub fn beat_ms(&self) -> f64 {
        60_000.0 / self.bpm
    }

    /// Milliseconds per bar.
    pub fn bar_ms(&self) -> f64 {
        self.beat_ms() * f64::from(self.beats_per_bar)
    }

    /// The beat (fractional) at server time `t`, ms.
    pub fn beat_at(&self, t: f64) -> f64 {
        self.origin_beat + (t - self.origin_time) / self.beat_ms()
    }

    /// The server time of beat `beat`.
    pub fn time_of_beat(&self, beat: f64) -> f64 {
        self.origin_time + (beat - self.origin_beat) * self.beat_ms()
    }

    /// The first bar line at or after `max(t, origin_time)`: its time and beat number.
    pub fn next_bar_line(&self, t: f64) -> (f64, f64) {
        let bars = ((t - self.origin_time) / self.bar_ms()).ceil().max(0.0);
        let beat = self.origin_beat + bars * f64::from(self.beats_per_bar);
        (self.time_of_beat(beat), beat)
    }

    /// The tempo after a `tempo:set` to `bpm` / `beats_per_bar` (`None`: unchanged) that the
    /// server received at `received` from `set_by`: it starts on the first bar line of this
    /// tempo, at or after this tempo's origin, that lies at least [`CHANGE_LEAD_MS`] after
    /// `received`, so the beat never jumps and beat numbers go on.
    pub fn changed(
        &self,
        bpm: f64,
        beats_per_bar: Option<u32>,
        received: f64,
        set_by: &str,
    ) -> Tempo {
        let (origin_time, origin_beat) = self.next_bar_line(received + CHANGE_LEAD_MS);
        Tempo {
            bpm,
            beats_per_bar: beats_per_bar.unwrap_or(self.beats_per_bar),
            origin_time,
            origin_beat,
            set_by: Some(set_by.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn the_default_counts_beats_from_the_room_creation() {
        let t = Tempo::default_at(1_000.0);
        assert_eq!(
            (t.bpm, t.beats_per_bar, t.origin_beat, t.set_by.clone()),
            (120.0, 4, 0.0, None)
        );
        assert!(close(t.beat_at(1_000.0), 0.0));
        assert!(
            close(t.beat_at(1_500.0), 1.0),
            "120 bpm: a beat every 500 ms"
        );
        assert!(close(t.bar_ms(), 2_000.0));
        assert_eq!(t.next_bar_line(1_000.0), (1_000.0, 0.0));
        assert_eq!(t.next_bar_line(1_001.0), (3_000.0, 4.0));
        assert_eq!(
            t.next_bar_line(0.0),
            (1_000.0, 0.0),
            "never before the origin"
        );
    }

    #[test]
    fn a_change_starts_on_a_bar_line_at_least_250_ms_ahead() {
        let t = Tempo::default_at(0.0);
        // Received at 1,700: 1,950 is past nothing, so the bar line at 2,000 (beat 4).
        let n = t.changed(90.0, None, 1_700.0, "u");
        assert_eq!(
            (n.origin_time, n.origin_beat, n.beats_per_bar),
            (2_000.0, 4.0, 4)
        );
        assert_eq!(n.set_by.as_deref(), Some("u"));
        // Received at 1,800: 2,050 is past 2,000, so the next bar line, 4,000 (beat 8).
        let n = t.changed(90.0, Some(3), 1_800.0, "u");
        assert_eq!(
            (n.origin_time, n.origin_beat, n.beats_per_bar),
            (4_000.0, 8.0, 3)
        );
    }

    #[test]
    fn a_change_never_moves_the_beat_phase_and_beat_numbers_go_on() {
        let mut t = Tempo::default_at(12_345.678);
        let mut received = 20_000.0;
        for (bpm, bar) in [
            (97.3, Some(3)),
            (300.0, None),
            (20.0, Some(7)),
            (133.0, Some(16)),
        ] {
            let n = t.changed(bpm, bar, received, "u");
            // At the switch both timelines agree on the beat, an integer at a bar line.
            assert!(close(t.beat_at(n.origin_time), n.origin_beat));
            assert!(close(n.origin_beat, n.origin_beat.round()));
            assert!(close(
                (n.origin_beat - t.origin_beat) % f64::from(t.beats_per_bar),
                0.0
            ));
            assert!(n.origin_time >= received + CHANGE_LEAD_MS);
            assert!(n.origin_time < received + CHANGE_LEAD_MS + t.bar_ms() + 1e-6);
            assert!(n.origin_time >= t.origin_time);
            received = n.origin_time + 777.0;
            t = n;
        }
    }

    #[test]
    fn a_change_while_another_is_pending_aligns_to_the_pending_one() {
        let t = Tempo::default_at(0.0);
        let pending = t.changed(60.0, Some(2), 100.0, "a"); // starts at 2,000, beat 4
        assert_eq!((pending.origin_time, pending.origin_beat), (2_000.0, 4.0));
        let next = pending.changed(150.0, None, 150.0, "b");
        // Not before the pending tempo's own origin: its first bar line, 2,000.
        assert_eq!((next.origin_time, next.origin_beat), (2_000.0, 4.0));
        let later = pending.changed(150.0, None, 1_900.0, "b");
        // 60 bpm, 2 beats a bar: bar lines every 2,000 ms from 2,000.
        assert_eq!((later.origin_time, later.origin_beat), (4_000.0, 6.0));
    }
}
