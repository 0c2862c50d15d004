//! Event names on the wire, one constant each (PROTOCOL.md §3).

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
