//! Storage: the SQLite connections, the schema's entities and the queries that return domain types.
//!
//! All writes share one connection, so concurrent writers queue inside chatd instead of meeting
//! SQLite's "database is locked"; reads use a small pool of their own and, in WAL mode, never
//! wait for writes.
pub mod entities;
pub mod messages;
pub mod users;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value,
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

use crate::config::Config;

#[derive(Clone)]
pub struct Store {
    pub read: DatabaseConnection,
    pub write: DatabaseConnection,
}

impl Store {
    /// Opens (creating if needed) the database named by the configuration. Does not migrate.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let url = config.database_url();
        if !url.starts_with("sqlite:") {
            anyhow::bail!("database.url must be a sqlite: URL (got `{url}`)");
        }
        if config.database.url.is_empty() {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
        }
        let synchronous = SqliteSynchronous::from_str(&config.database.synchronous)
            .map_err(|e| anyhow::anyhow!("database.synchronous: {e}"))?;
        let busy_timeout = Duration::from_millis(config.database.busy_timeout_ms);
        let connect = |max_connections: u32| {
            let mut options = ConnectOptions::new(url.clone());
            options
                .max_connections(max_connections)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(move |o: SqliteConnectOptions| {
                    o.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(synchronous)
                        .busy_timeout(busy_timeout)
                        .foreign_keys(true)
                        .pragma("temp_store", "MEMORY")
                        // A page cache and memory map large enough that big batches neither spill
                        // pages mid-transaction nor read them back through system calls.
                        .pragma("cache_size", "-32768")
                        .pragma("mmap_size", "268435456")
                });
            options
        };
        let write = Database::connect(connect(1)).await.with_context(|| format!("cannot open database {url}"))?;
        let read = Database::connect(connect(config.database.read_connections))
            .await
            .with_context(|| format!("cannot open database {url}"))?;
        Ok(Self { read, write })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        Migrator::up(&self.write, None).await.context("database migration failed")
    }

    /// Names of the migrations and whether each is applied, oldest first.
    pub async fn migration_status(&self) -> anyhow::Result<Vec<(String, bool)>> {
        let applied: Vec<String> = Migrator::get_applied_migrations(&self.write)
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        Ok(Migrator::migrations()
            .iter()
            .map(|m| (m.name().to_owned(), applied.iter().any(|a| a == m.name())))
            .collect())
    }

    /// Moves WAL checkpoints off the write path: SQLite would otherwise copy the log into the
    /// database inside whichever commit crosses 1000 pages, stalling every message in that batch.
    /// A background task checkpoints every second instead (PASSIVE: it never blocks the writer).
    /// Durability is unchanged: a commit is durable once its WAL frames are synced.
    pub async fn checkpoint_in_background(&self) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        self.write.execute_unprepared("PRAGMA wal_autocheckpoint = 0").await?;
        let read = self.read.clone();
        Ok(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                if let Err(error) = read.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await {
                    tracing::warn!(%error, "WAL checkpoint failed");
                }
            }
        }))
    }

    /// True when the database answers a trivial query.
    pub async fn is_ready(&self) -> bool {
        self.read.execute_unprepared("SELECT 1").await.is_ok()
    }
}

/// A raw SQLite statement with bound values.
pub fn sql(text: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, text, values)
}
