//! The room store (docs/protocol.md §12): where each room's *state* (its code, tempo, host,
//! seats in join order with each seat's current token nonce, and `seq`) lives beyond the
//! process, so that a restart, a crash or a deploy brings every room back as it was. Notes,
//! datagrams and the replay history are never stored.
//!
//! Three backends behind one interface ([`Backend`]): in memory (`memory.rs`, nothing
//! survives the process: for tests), an embedded database file
//! (`file.rs`, redb, the single-node default) and Redis (`redis.rs`, for many nodes).
//!
//! The room core never waits for the store. It hands the store a [`RoomRecord`] whenever a
//! room's state changes ([`Store::save`], [`Store::forget`]); the records wait in a map,
//! the newest per room, and one task ([`Store::run`]) writes them in batches. A failing
//! backend leaves them waiting: the task retries with backoff, [`Store::is_ready`] turns
//! false (`/readyz` answers 503, `session:create` answers `unavailable`), and the log says
//! so once per outage. Rooms already open keep playing throughout.
//!
//! `seq` is written ahead: a record carries a number the room will not reach before it is
//! written again ([`SEQ_RESERVE`] above its `seq`), so the note path writes nothing, and a
//! room recreated after a crash continues above every number it handed out. A clean stop
//! writes the exact numbers ([`Store::flush`] after the hub's final save).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use jam_protocol::Tempo;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

mod file;
mod memory;
mod redis;

pub use file::FileBackend;
pub use memory::MemoryBackend;
pub use redis::RedisBackend;

/// How far ahead of a room's `seq` its stored value is written (this server's choice,
/// docs/protocol.md §12): one write per this many reliable messages at most, and the jump a
/// room's `seq` makes when it is recreated after a crash.
pub const SEQ_RESERVE: u64 = 1 << 20;

/// The database file's name in the data directory.
pub const FILE_NAME: &str = "rooms.redb";

/// A boxed future, for the backends' methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A room's state as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The canonical room code.
    pub code: String,
    /// The room's tempo (its origin is in Unix-anchored server time, so it stays right
    /// across restarts and nodes).
    pub tempo: Tempo,
    /// The host's user id.
    pub host: String,
    /// No `seq` above this was handed out (the room continues from here).
    pub seq: u64,
    /// The join-order place the next seat gets.
    pub next_order: u64,
    /// In join order.
    pub seats: Vec<SeatRecord>,
}

/// One seat as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeatRecord {
    /// The seat's user id.
    pub user: String,
    /// The display name.
    pub name: String,
    /// The instrument.
    pub instrument: String,
    /// Place in the join order.
    pub order: u64,
    /// The nonce of the seat's current resume token: only that token brings it back.
    pub nonce: String,
    /// With sign-in on, the app's user id of the seat (docs/protocol.md §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// With sign-in on, when the seat's token expires (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

impl RoomRecord {
    /// The record as stored bytes (JSON: readable with `redis-cli` too).
    pub fn to_bytes(&self) -> Vec<u8> {
        // A plain struct of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record from stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// One change for a backend: a room's new record, or `None` when the room is gone.
pub type Change = (String, Option<Vec<u8>>);

/// Where records are kept. Each method is one round trip to the backend.
pub trait Backend: Send + Sync + 'static {
    /// What it is, for logs and `/connect`.
    fn kind(&self) -> &'static str;
    /// Whether records outlive the process.
    fn durable(&self) -> bool;
    /// Writes a batch of changes, all or none.
    fn write(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<()>>;
    /// Every stored record's bytes.
    fn load_all(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>>>;
    /// Whether the backend answers.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;
    /// Whether it is reached over the network, and so may fail on its own: its health is
    /// then checked every second.
    fn remote(&self) -> bool {
        false
    }
    /// The Redis connection, for the node directory to share (`cluster.rs`).
    fn redis(&self) -> Option<::redis::aio::ConnectionManager> {
        None
    }
}

/// Store operations, by kind, for `/metrics` (`jam_store_ops_total{op}`).
#[derive(Debug, Default)]
pub struct StoreOps {
    /// Room records written.
    pub put: AtomicU64,
    /// Room records deleted.
    pub delete: AtomicU64,
    /// Loads of every record (at start).
    pub load: AtomicU64,
    /// Health checks.
    pub ping: AtomicU64,
    /// Operations that failed.
    pub failed: AtomicU64,
}

/// The server's handle on its store: the changes waiting to be written, and whether the
/// backend answers.
pub struct Store {
    backend: Arc<dyn Backend>,
    waiting: Mutex<HashMap<String, Option<Vec<u8>>>>,
    /// Changes handed in, and changes written or replaced by newer ones.
    handed: AtomicU64,
    settled: AtomicU64,
    wake: Notify,
    ready: AtomicBool,
    ops: StoreOps,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("kind", &self.backend.kind())
            .finish()
    }
}

/// The first wait after a failed write or health check; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a healthy backend that could fail on its own (Redis) is checked.
const PING_EVERY: Duration = Duration::from_secs(1);

impl Store {
    /// A store on `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Arc<Self> {
        Arc::new(Store {
            backend,
            waiting: Mutex::new(HashMap::new()),
            handed: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            wake: Notify::new(),
            ready: AtomicBool::new(true),
            ops: StoreOps::default(),
        })
    }

    /// A store in memory: nothing outlives the process.
    pub fn memory() -> Arc<Self> {
        Store::new(Arc::new(MemoryBackend::default()))
    }

    /// What kind of backend it is.
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// The backend's Redis connection, when it is Redis.
    pub fn redis(&self) -> Option<::redis::aio::ConnectionManager> {
        self.backend.redis()
    }

    /// Whether rooms outlive the process in it.
    pub fn durable(&self) -> bool {
        self.backend.durable()
    }

    /// Whether the backend answered last time it was asked.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The operations done so far.
    pub fn ops(&self) -> &StoreOps {
        &self.ops
    }

    /// Changes handed in and not yet written.
    pub fn unsaved(&self) -> u64 {
        let settled = self.settled.load(Ordering::Acquire);
        self.handed.load(Ordering::Acquire).saturating_sub(settled)
    }

    /// Queues `record` to be written (replacing any older one for its room still waiting).
    pub fn save(&self, record: &RoomRecord) {
        self.queue(record.code.clone(), Some(record.to_bytes()));
    }

    /// Queues the deletion of room `code`.
    pub fn forget(&self, code: &str) {
        self.queue(code.to_string(), None);
    }

    fn queue(&self, code: String, change: Option<Vec<u8>>) {
        let replaced = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(code, change)
            .is_some();
        self.handed.fetch_add(1, Ordering::AcqRel);
        if replaced {
            self.settled.fetch_add(1, Ordering::AcqRel);
        }
        self.wake.notify_one();
    }

    /// Every stored record (at start). Records that do not parse are skipped with a
    /// warning.
    pub async fn load_all(&self) -> Result<Vec<RoomRecord>> {
        self.ops.load.fetch_add(1, Ordering::Relaxed);
        let raw = self.backend.load_all().await.inspect_err(|_| {
            self.ops.failed.fetch_add(1, Ordering::Relaxed);
        })?;
        Ok(raw
            .iter()
            .filter_map(|bytes| match RoomRecord::from_bytes(bytes) {
                Ok(record) => Some(record),
                Err(e) => {
                    warn!(error = %e, "skipping a room record that does not parse");
                    None
                }
            })
            .collect())
    }

    /// Writes what waits, once. On failure the changes wait again (unless newer ones
    /// came meanwhile) and the store is not ready.
    async fn write_waiting(&self) -> Result<()> {
        let batch: Vec<Change> = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.drain().collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let (puts, deletes) = batch.iter().fold((0, 0), |(p, d), (_, c)| match c {
            Some(_) => (p + 1, d),
            None => (p, d + 1),
        });
        match self.backend.write(batch.clone()).await {
            Ok(()) => {
                self.ops.put.fetch_add(puts, Ordering::Relaxed);
                self.ops.delete.fetch_add(deletes, Ordering::Relaxed);
                self.settled.fetch_add(puts + deletes, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                self.ops.failed.fetch_add(1, Ordering::Relaxed);
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                for (code, change) in batch {
                    match waiting.entry(code) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(change);
                        }
                        // A newer change replaces this one.
                        std::collections::hash_map::Entry::Occupied(_) => {
                            self.settled.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                }
                Err(e)
            }
        }
    }

    fn set_ready(&self, ready: bool, why: Option<&anyhow::Error>) {
        let was = self.ready.swap(ready, Ordering::Relaxed);
        match (was, ready, why) {
            (true, false, Some(e)) => warn!(
                store = self.kind(),
                error = %format!("{e:#}"),
                "the room store is unreachable; new rooms are refused until it is back"
            ),
            (false, true, _) => info!(store = self.kind(), "the room store is reachable again"),
            _ => {}
        }
    }

    /// Marks the store unreachable because of `why` (a failed load at start).
    pub fn note_failure(&self, why: &anyhow::Error) {
        self.ops.failed.fetch_add(1, Ordering::Relaxed);
        self.set_ready(false, Some(why));
    }

    /// Writes changes as they come and checks a remote backend's health, until
    /// `shutdown`; retries with backoff while the backend fails. When it answers again
    /// after failing, `resave` is called to hand it every room again (a Redis that
    /// restarted empty gets them back).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, resave: impl Fn() + Send) {
        let mut backoff = MIN_BACKOFF;
        let remote = self.backend.remote();
        loop {
            let ready = self.is_ready();
            let wait = match (ready, remote) {
                (false, _) => backoff,
                (true, true) => PING_EVERY,
                (true, false) => Duration::from_secs(3600),
            };
            let timer = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified(), if ready => false,
                _ = tokio::time::sleep(wait) => true,
            };
            if timer && (remote || !ready) {
                self.ops.ping.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.backend.ping().await {
                    self.note_failure(&e);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            match self.write_waiting().await {
                Ok(()) => {
                    self.set_ready(true, None);
                    backoff = MIN_BACKOFF;
                    if !ready {
                        resave();
                    }
                }
                Err(e) => {
                    self.set_ready(false, Some(&e));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Writes whatever waits, trying for at most `within` (at a clean stop).
    pub async fn flush(&self, within: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.write_waiting()).await;
            match attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if tokio::time::Instant::now() >= deadline => return Err(e),
                Ok(Err(_)) => tokio::time::sleep(MIN_BACKOFF).await,
                Err(_) => anyhow::bail!("the room store did not answer within {within:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(code: &str, seq: u64) -> RoomRecord {
        RoomRecord {
            code: code.into(),
            tempo: Tempo::default_at(1.0),
            host: "u1".into(),
            seq,
            next_order: 2,
            seats: vec![SeatRecord {
                user: "u1".into(),
                name: "Ana".into(),
                instrument: "piano".into(),
                order: 1,
                nonce: "n".into(),
                sub: None,
                exp: None,
            }],
        }
    }

    #[tokio::test]
    async fn the_newest_change_per_room_is_written_and_deletes_remove() {
        let store = Store::memory();
        store.save(&record("AAAAAA", 1));
        store.save(&record("AAAAAA", 2));
        store.save(&record("BBBBBB", 1));
        assert_eq!(store.unsaved(), 2, "a newer record replaces the older");
        store.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(store.unsaved(), 0);
        let mut all = store.load_all().await.unwrap();
        all.sort_by(|a, b| a.code.cmp(&b.code));
        assert_eq!(all, vec![record("AAAAAA", 2), record("BBBBBB", 1)]);
        store.forget("AAAAAA");
        store.flush(Duration::from_secs(1)).await.unwrap();
        let all = store.load_all().await.unwrap();
        assert_eq!(all, vec![record("BBBBBB", 1)]);
        assert_eq!(store.ops().put.load(Ordering::Relaxed), 2);
        assert_eq!(store.ops().delete.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn the_file_backend_keeps_records_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::new(Arc::new(FileBackend::open(dir.path()).unwrap()));
            store.save(&record("CCCCCC", 7));
            store.flush(Duration::from_secs(5)).await.unwrap();
            let again = FileBackend::open(dir.path());
            assert!(again.is_err(), "one process per data directory");
        }
        let store = Store::new(Arc::new(FileBackend::open(dir.path()).unwrap()));
        assert_eq!(store.load_all().await.unwrap(), vec![record("CCCCCC", 7)]);
    }
}
