//! The room store in an embedded database file (redb): the single-node default, in the data
//! directory (`--data-dir`). Crash-safe: a write that returned is on disk. One process
//! opens a data directory at a time; a second one is refused at start.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Backend, BoxFuture, Change, FILE_NAME};

/// Room code → record (JSON).
const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms");

/// The database file.
#[derive(Debug, Clone)]
pub struct FileBackend {
    db: Arc<Database>,
}

impl FileBackend {
    /// Opens (making it and the directory when missing) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                "{} is in use by another process (one server per data directory)",
                path.display()
            ),
            other => anyhow::Error::new(other).context(format!("opening {}", path.display())),
        })?;
        let txn = db.begin_write()?;
        txn.open_table(ROOMS)?;
        txn.commit()?;
        Ok(FileBackend { db: Arc::new(db) })
    }

    fn write_now(db: &Database, changes: Vec<Change>) -> Result<()> {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(ROOMS)?;
            for (code, change) in &changes {
                match change {
                    Some(bytes) => {
                        table.insert(code.as_str(), bytes.as_slice())?;
                    }
                    None => {
                        table.remove(code.as_str())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn load_now(db: &Database) -> Result<Vec<Vec<u8>>> {
        let txn = db.begin_read()?;
        let table = txn.open_table(ROOMS)?;
        let mut all = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            all.push(value.value().to_vec());
        }
        Ok(all)
    }
}

/// Runs blocking database work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("the room store's worker stopped")?
}

impl Backend for FileBackend {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn durable(&self) -> bool {
        true
    }

    fn write(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<()>> {
        let db = self.db.clone();
        Box::pin(blocking(move || Self::write_now(&db, changes)))
    }

    fn load_all(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>>> {
        let db = self.db.clone();
        Box::pin(blocking(move || Self::load_now(&db)))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
