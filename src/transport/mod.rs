//! Thin transport adapters: they frame bytes into messages for a
//! [`Session`](crate::session::Session) and drain its outbox back onto the wire. Neither
//! knows about rooms.

pub mod lines;
pub mod sio;
pub mod unfinished;
pub mod ws;
pub mod wt;
