//! The room store in Redis (`--redis-url`): what several nodes share. Each room's record is a
//! string under `jam:room:<CODE>` (JSON), and the set `jam:rooms` lists the codes; a batch of
//! changes is one `MULTI` transaction. Notes never reach Redis.
//!
//! The connection is made lazily and re-made after a failure by redis-rs's connection
//! manager; every command times out after [`TIMEOUT`], so a Redis that stops answering
//! shows within a second on `/readyz`.

use std::time::Duration;

use anyhow::{Context as _, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Backend, BoxFuture, Change};

/// The longest any Redis command (or connecting) may take.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The set of stored room codes.
const ROOMS_KEY: &str = "jam:rooms";

fn room_key(code: &str) -> String {
    format!("jam:room:{code}")
}

/// A Redis server.
#[derive(Clone)]
pub struct RedisBackend {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisBackend")
    }
}

impl RedisBackend {
    /// A backend for `url` (`redis://host:port/db`); connects on first use, so a Redis
    /// that is down at start only makes the store not ready.
    pub fn new(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).context("--redis-url is not a Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .context("setting up the Redis connection")?;
        Ok(RedisBackend { conn })
    }
}

impl Backend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn durable(&self) -> bool {
        true
    }

    fn remote(&self) -> bool {
        true
    }

    fn redis(&self) -> Option<ConnectionManager> {
        Some(self.conn.clone())
    }

    fn write(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<()>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (code, change) in &changes {
                match change {
                    Some(bytes) => {
                        pipe.cmd("SET")
                            .arg(room_key(code))
                            .arg(bytes.as_slice())
                            .ignore();
                        pipe.cmd("SADD").arg(ROOMS_KEY).arg(code).ignore();
                    }
                    None => {
                        pipe.cmd("DEL").arg(room_key(code)).ignore();
                        pipe.cmd("SREM").arg(ROOMS_KEY).arg(code).ignore();
                    }
                }
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .context("writing rooms to Redis")
        })
    }

    fn load_all(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let codes: Vec<String> = redis::cmd("SMEMBERS")
                .arg(ROOMS_KEY)
                .query_async(&mut conn)
                .await
                .context("listing rooms in Redis")?;
            if codes.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = codes.iter().map(|c| room_key(c)).collect();
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .context("reading rooms from Redis")?;
            Ok(values.into_iter().flatten().collect())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .context("Redis does not answer")
        })
    }
}
