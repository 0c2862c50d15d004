//! Room requests that must ask the node directory first (docs/protocol.md §12): with several
//! nodes on one Redis, a `session:create` needs a code no node uses, and a `session:join` or
//! `session:resume` for a room this node does not hold needs to know where the room is
//! (another node: `room_elsewhere`; nobody: claim it and recreate it here).
//!
//! The session stays synchronous: it parks such a request as a [`Followup`] (owned, with
//! its `id`), the transport awaits [`Followup::run`] (one or a few Redis round trips) and
//! hands the [`Settled`] result back to the session, which answers it as it would have.

use std::sync::Arc;

use jam_protocol::{ErrorCode, ProtocolError, RoomCode};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::cluster::{Cluster, Whereabouts};
use crate::room::{Asked, Hub};

/// A room request parked until the directory answers.
#[derive(Debug)]
pub struct Followup {
    /// What was asked.
    pub request: Request,
    /// The request's `id`, echoed by the answer.
    pub id: Option<Box<RawValue>>,
}

/// The room requests that may wait for the directory.
#[derive(Debug)]
pub enum Request {
    /// `session:create`.
    Create {
        /// The seat asked for (and its sign-in, checked already).
        asked: Asked,
    },
    /// `session:join` of a room this node does not hold.
    Join {
        /// The room's canonical code.
        code: RoomCode,
        /// As the client wrote it.
        typed: String,
        /// The seat asked for (and its sign-in, checked already).
        asked: Asked,
    },
    /// `session:resume` of a room this node does not hold.
    Resume {
        /// The room's canonical code.
        code: RoomCode,
        /// As the client wrote it.
        typed: String,
        /// The resume token.
        token: String,
        /// The last `seq` the client saw.
        last_seq: Option<u64>,
    },
}

/// What the directory said.
#[derive(Debug)]
pub enum Outcome {
    /// Handle the request here, as if nothing had been asked (the room is here now, or
    /// nowhere).
    Here,
    /// Create the room under this code (reserved across nodes).
    Code(RoomCode),
    /// The room lives on another node: its `GET /connect` answer.
    Elsewhere(Value),
    /// The directory could not be asked.
    Failed(ProtocolError),
}

/// A followup with its outcome.
#[derive(Debug)]
pub struct Settled {
    /// The request.
    pub followup: Followup,
    /// What to do with it.
    pub outcome: Outcome,
}

impl Followup {
    async fn ask(&self, cluster: &Cluster, hub: &Arc<Hub>) -> anyhow::Result<Outcome> {
        match &self.request {
            Request::Create { .. } => cluster.reserve_code().await.map(Outcome::Code),
            Request::Join { code, .. } | Request::Resume { code, .. } => {
                cluster.locate(code, hub).await.map(|w| match w {
                    Whereabouts::Here => Outcome::Here,
                    Whereabouts::Elsewhere(connect) => Outcome::Elsewhere(connect),
                })
            }
        }
    }

    /// Asks the directory (Redis), recreating a claimed room in `hub`.
    pub async fn run(self, cluster: &Cluster, hub: &Arc<Hub>) -> Settled {
        // Once more after a failure: the first command after Redis came back may find
        // the connection still being made again.
        let mut answer = self.ask(cluster, hub).await;
        if answer.is_err() {
            answer = self.ask(cluster, hub).await;
        }
        let outcome = answer.unwrap_or_else(|e| {
            tracing::debug!(error = %format!("{e:#}"), "the node directory did not answer");
            Outcome::Failed(ProtocolError::new(
                ErrorCode::Unavailable,
                "the server cannot reach its room directory; try again in a moment",
            ))
        });
        Settled {
            followup: self,
            outcome,
        }
    }
}
