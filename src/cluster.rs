//! Several nodes on one Redis (docs/protocol.md §12): which node owns which room, which nodes
//! are alive, and how a room changes hands.
//!
//! Redis holds, beside the room records of `store/redis.rs`:
//!
//! ```text
//!   jam:owner:<CODE>   the owner's node id; refreshed every 2 s, lapses 6 s after the last
//!   jam:node:<ID>      a live node: its GET /connect answer and its seat count (lapses too)
//!   jam:nodes          the set of node ids seen (pruned of lapsed ones when read)
//! ```
//!
//! A room lives on one node; notes never cross nodes. A node that does not own a room
//! sends a client to the owner (`room_elsewhere`); when the owner's entry lapses (the node
//! died), the first resume on any node claims the room with one atomic `SET … NX` and
//! recreates it from its record; a node that stops (SIGTERM) hands its rooms to the live
//! node with the fewest seats and tells its members to follow (`session:moved`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use jam_protocol::RoomCode;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::room::Hub;
use crate::store::RoomRecord;

/// How often the owner refreshes its rooms' entries and its own.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How long an entry lives after its last refresh.
pub const LAPSE: Duration = Duration::from_secs(6);

fn owner_key(code: &str) -> String {
    format!("jam:owner:{code}")
}

fn node_key(id: &str) -> String {
    format!("jam:node:{id}")
}

const NODES_KEY: &str = "jam:nodes";

/// Refreshes the owner entries of the rooms in `KEYS` that are this node's (`ARGV[1]`) or
/// nobody's, for `ARGV[2]` ms; returns the keys another node holds.
const REFRESH_OWNED: &str = r"
local lost = {}
for _, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, key)
  end
end
return lost
";

/// Takes a fresh code for a new room: only when neither a record nor an owner exists.
const RESERVE_CODE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Moves the owner entry `KEYS[1]` from node `ARGV[1]` to `ARGV[2]` (for `ARGV[3]` ms) when it
/// still names `ARGV[1]` and that node's entry `KEYS[2]` is gone.
const CLAIM_FROM: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Deletes the owner entries in `KEYS` that are this node's (`ARGV[1]`).
const RELEASE: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
";

/// What a live node publishes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Its `GET /connect` answer (with `"node"`).
    pub connect: Value,
    /// Seats it holds, away ones included: its load.
    pub seats: usize,
}

/// Where a room is, as seen from this node.
#[derive(Debug, Clone)]
pub enum Whereabouts {
    /// Here (now): the room is in this node's hub, or nowhere.
    Here,
    /// On another live node, whose `GET /connect` answer this is.
    Elsewhere(Value),
}

/// This node's view of the nodes sharing its Redis.
pub struct Cluster {
    conn: ConnectionManager,
    node: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

impl Cluster {
    /// This node (`node`) on the Redis that `conn` reaches (the room store's connection).
    pub fn new(conn: ConnectionManager, node: String) -> Arc<Self> {
        Arc::new(Cluster { conn, node })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The owner of room `code`, if any node holds it now.
    pub async fn owner(&self, code: &str) -> Result<Option<String>> {
        let owner: Option<String> = redis::cmd("GET")
            .arg(owner_key(code))
            .query_async(&mut self.conn())
            .await?;
        Ok(owner)
    }

    /// The entry of live node `id`, if it is alive.
    pub async fn node_entry(&self, id: &str) -> Result<Option<NodeEntry>> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(node_key(id))
            .query_async(&mut self.conn())
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Where room `code` is: on another live node, or here (this node owns it, or claimed
    /// it just now because nobody did, recreating it from its record into `hub`).
    pub async fn locate(&self, code: &RoomCode, hub: &Arc<Hub>) -> Result<Whereabouts> {
        for _ in 0..3 {
            match self.owner(code.as_str()).await? {
                Some(owner) if owner == self.node => {
                    // Ours (handed to us, or ours before a restart) but not in the hub
                    // yet: bring it in from its record.
                    self.bring_in(code, hub).await?;
                    return Ok(Whereabouts::Here);
                }
                Some(owner) => match self.node_entry(&owner).await? {
                    Some(entry) => return Ok(Whereabouts::Elsewhere(entry.connect)),
                    // Its node is gone (its own entry lapsed first): take the room over
                    // from it, as from nobody.
                    None => {
                        if self.claim_from(code, &owner).await? {
                            if !self.bring_in(code, hub).await? {
                                self.release(&[code.to_string()]).await?;
                            }
                            return Ok(Whereabouts::Here);
                        }
                    }
                },
                None => {
                    if self.claim(code).await? {
                        if !self.bring_in(code, hub).await? {
                            // No such room: give the code back.
                            self.release(&[code.to_string()]).await?;
                        }
                        return Ok(Whereabouts::Here);
                    }
                    // Another node won the race: look again.
                }
            }
        }
        anyhow::bail!("the room changed hands too often; try again")
    }

    /// Takes room `code` if nobody owns it; `true` when this node got it.
    pub async fn claim(&self, code: &RoomCode) -> Result<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(owner_key(code.as_str()))
            .arg(&self.node)
            .arg("NX")
            .arg("PX")
            .arg(LAPSE.as_millis() as u64)
            .query_async(&mut self.conn())
            .await?;
        Ok(set.is_some())
    }

    /// Takes room `code` from node `dead`, whose entry has lapsed, if it still names that
    /// node; `true` when this node got it.
    pub async fn claim_from(&self, code: &RoomCode, dead: &str) -> Result<bool> {
        let took: i64 = redis::Script::new(CLAIM_FROM)
            .key(owner_key(code.as_str()))
            .key(node_key(dead))
            .arg(dead)
            .arg(&self.node)
            .arg(LAPSE.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(took == 1)
    }

    /// Recreates room `code` in `hub` from its record, unless the hub has it already;
    /// `false` when there is no record.
    async fn bring_in(&self, code: &RoomCode, hub: &Arc<Hub>) -> Result<bool> {
        if hub.room(code).is_some() {
            return Ok(true);
        }
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("jam:room:{code}"))
            .query_async(&mut self.conn())
            .await?;
        let Some(raw) = raw else {
            return Ok(false);
        };
        let record = RoomRecord::from_bytes(&raw)?;
        hub.restore(vec![record]);
        Ok(true)
    }

    /// A code no node uses and no stored room has, owned by this node from now.
    pub async fn reserve_code(&self) -> Result<RoomCode> {
        for _ in 0..32 {
            let code = RoomCode::generate();
            let took: i64 = redis::Script::new(RESERVE_CODE)
                .key(format!("jam:room:{code}"))
                .key(owner_key(code.as_str()))
                .arg(&self.node)
                .arg(LAPSE.as_millis() as u64)
                .invoke_async(&mut self.conn())
                .await?;
            if took == 1 {
                return Ok(code);
            }
        }
        anyhow::bail!("no free room code after 32 tries")
    }

    /// Gives up the owner entries of `codes` that are this node's.
    pub async fn release(&self, codes: &[String]) -> Result<()> {
        if codes.is_empty() {
            return Ok(());
        }
        let release = redis::Script::new(RELEASE);
        let mut script = release.prepare_invoke();
        for code in codes {
            script.key(owner_key(code));
        }
        script
            .arg(&self.node)
            .invoke_async::<i64>(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Refreshes this node's entry (`connect`: its `GET /connect` answer for clients sent
    /// here by other nodes) and the owner entries of its rooms, once.
    pub async fn refresh(&self, hub: &Hub, connect: Value) -> Result<()> {
        let lost = self.refresh_entries(hub, connect).await?;
        for code in lost {
            self.yield_room(hub, &code).await?;
        }
        Ok(())
    }

    /// Refreshes the entries; returns the codes of rooms this node holds that another
    /// node owns now.
    async fn refresh_entries(&self, hub: &Hub, connect: Value) -> Result<Vec<RoomCode>> {
        let entry = NodeEntry {
            connect,
            seats: hub.seat_total(),
        };
        let mut conn = self.conn();
        redis::pipe()
            .cmd("SET")
            .arg(node_key(&self.node))
            .arg(serde_json::to_string(&entry)?)
            .arg("PX")
            .arg(LAPSE.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(NODES_KEY)
            .arg(&self.node)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        let codes = hub.room_codes();
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let refresh = redis::Script::new(REFRESH_OWNED);
        let mut script = refresh.prepare_invoke();
        for code in &codes {
            script.key(owner_key(code.as_str()));
        }
        let lost: Vec<String> = script
            .arg(&self.node)
            .arg(LAPSE.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(lost
            .iter()
            .filter_map(|key| key.strip_prefix("jam:owner:"))
            .filter_map(RoomCode::normalize)
            .collect())
    }

    /// Another node claimed room `code` while this one still held it (this node was cut
    /// off from Redis past the lapse time): the claim stands, and this node's players are
    /// sent there (`session:moved`), as in a hand-over.
    async fn yield_room(&self, hub: &Hub, code: &RoomCode) -> Result<()> {
        let Some(owner) = self.owner(code.as_str()).await? else {
            return Ok(());
        };
        let Some(entry) = self.node_entry(&owner).await? else {
            return Ok(());
        };
        warn!(room = %code, owner = %owner, "another node claimed a room this node held; its players move there");
        hub.hand_over(code, &jam_protocol::encode_moved(code, &entry.connect));
        Ok(())
    }

    /// Refreshes the entries every [`REFRESH`] until `shutdown` (`answer` gives this
    /// node's current `GET /connect` answer); logs a failure once.
    pub async fn run(
        self: Arc<Self>,
        hub: Arc<Hub>,
        answer: impl Fn() -> Value + Send,
        shutdown: CancellationToken,
    ) {
        let mut failing = false;
        loop {
            match self.refresh(&hub, answer()).await {
                Ok(()) if failing => {
                    info!("the node directory in Redis is reachable again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    warn!(error = %format!("{e:#}"), "cannot refresh the node directory in Redis");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    }

    /// The other live nodes, with their entries.
    pub async fn other_nodes(&self) -> Result<Vec<(String, NodeEntry)>> {
        let mut conn = self.conn();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(NODES_KEY)
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = ids.into_iter().filter(|id| *id != self.node).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| node_key(id)).collect();
        let raw: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut live = Vec::new();
        let mut gone = Vec::new();
        for (id, raw) in ids.into_iter().zip(raw) {
            match raw.and_then(|r| serde_json::from_str::<NodeEntry>(&r).ok()) {
                Some(entry) => live.push((id, entry)),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            redis::cmd("SREM")
                .arg(NODES_KEY)
                .arg(&gone)
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(live)
    }

    /// Makes node `to` the owner of `code` (a hand-over).
    pub async fn give(&self, code: &str, to: &str) -> Result<()> {
        redis::cmd("SET")
            .arg(owner_key(code))
            .arg(to)
            .arg("PX")
            .arg(LAPSE.as_millis() as u64)
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Removes this node's entry (at a stop).
    pub async fn leave(&self) -> Result<()> {
        redis::pipe()
            .cmd("DEL")
            .arg(node_key(&self.node))
            .ignore()
            .cmd("SREM")
            .arg(NODES_KEY)
            .arg(&self.node)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }
}
