//! The room store in memory: nothing outlives the process. For tests, and for a server run
//! in-process.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Result;

use super::{Backend, BoxFuture, Change};

/// Records in a map.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    records: Mutex<HashMap<String, Vec<u8>>>,
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn durable(&self) -> bool {
        false
    }

    fn write(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<()>> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for (code, change) in changes {
            match change {
                Some(bytes) => records.insert(code, bytes),
                None => records.remove(&code),
            };
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn load_all(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>>> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        Box::pin(std::future::ready(Ok(records.values().cloned().collect())))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
