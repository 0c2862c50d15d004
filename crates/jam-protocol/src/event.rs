//! Event names on the wire, one constant each (docs/protocol.md §3).

/// Client: create a room.
pub const CREATE: &str = "session:create";
/// Client: join a room.
pub const JOIN: &str = "session:join";
/// Client: leave the room.
pub const LEAVE: &str = "session:leave";
/// Both ways: a relayed event.
pub const BROADCAST: &str = "event:broadcast";
/// Server: the room was created.
pub const CREATED: &str = "session:created";
/// Server: the caller joined.
pub const JOINED: &str = "session:joined";
/// Server: the caller left.
pub const LEFT: &str = "session:left";
/// Server: someone else joined.
pub const USER_JOINED: &str = "session:user-joined";
/// Server: someone else left.
pub const USER_LEFT: &str = "session:user-left";
/// Server: the host changed.
pub const HOST_CHANGED: &str = "session:host-changed";
/// Server: an error answer.
pub const ERROR: &str = "error";
/// Client: take a held seat back (1.1, §6).
pub const RESUME: &str = "session:resume";
/// Server: the seat is back on this connection (1.1, §6).
pub const RESUMED: &str = "session:resumed";
/// Server: someone's connection ended without a leave; their seat is held (1.1, §6).
pub const USER_AWAY: &str = "session:user-away";
/// Server: someone took their held seat back (1.1, §6).
pub const USER_BACK: &str = "session:user-back";
/// Client: a clock sample request (1.1, §7).
pub const CLOCK_PING: &str = "clock:ping";
/// Server: the answer to `clock:ping` (1.1, §7).
pub const CLOCK_PONG: &str = "clock:pong";
/// Client: change the room's tempo (1.1, §9).
pub const TEMPO_SET: &str = "tempo:set";
/// Server: the room's tempo changed (1.1, §9).
pub const TEMPO_CHANGED: &str = "tempo:changed";
/// Server: the round-trip times of the room's seats (1.1, §8).
pub const LATENCY: &str = "session:latency";
/// Client: replace the seat's sign-in token (1.2, §13).
pub const AUTH_REFRESH: &str = "auth:refresh";
/// Server: the seat's sign-in token was replaced (1.2, §13).
pub const AUTH_REFRESHED: &str = "auth:refreshed";
/// Server: the room moved to another node; resume there (1.2, §12).
pub const MOVED: &str = "session:moved";
