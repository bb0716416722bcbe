//! Storage: the database connections (SQLite, or PostgreSQL for a cluster), the schema's entities
//! and the queries that return domain types. Backend differences stay in this module.
//!
//! On SQLite all writes share one connection, so concurrent writers queue inside chatd instead of
//! meeting "database is locked"; reads use a small pool of their own and, in WAL mode, never wait
//! for writes.
pub mod conversations;
pub mod entities;
pub mod files;
pub mod messages;
pub mod permissions;
pub mod transfer;
pub mod users;

use std::{fmt::Write, str::FromStr, time::Duration};

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
    /// `database.wal_budget_mib` in bytes: the WAL length past which the checkpointer makes the
    /// log start over, and what the file is kept at for reuse (growing a file costs more than
    /// rewriting it). Each restart holds the writer for a moment (3–17 ms measured), so not too
    /// often: at 10,000 messages a second the log grows by about 90 MiB a second.
    wal_budget_bytes: i64,
    postgres: bool,
}

/// Connections a PostgreSQL node writes with: the stream's writer, account writes and read markers.
const POSTGRES_WRITE_CONNECTIONS: u32 = 4;

impl Store {
    /// Opens (creating if needed) the database named by the configuration. Does not migrate.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let url = config.database_url();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::open_postgres(config, &url).await;
        }
        if !url.starts_with("sqlite:") {
            anyhow::bail!("database.url must be a sqlite: or postgres:// URL (got `{}`)", redact(&url));
        }
        if config.database.url.is_empty() {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
        }
        let synchronous = SqliteSynchronous::from_str(&config.database.synchronous)
            .map_err(|e| anyhow::anyhow!("database.synchronous: {e}"))?;
        let database_file = files::database_file(config);
        let creating = database_file.as_ref().is_some_and(|file| !file.exists());
        let busy_timeout = Duration::from_millis(config.database.busy_timeout_ms);
        let connect = |max_connections: u32| {
            let mut options = ConnectOptions::new(url.clone());
            options
                .max_connections(max_connections)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                // Connections are never recycled: settings made after connecting (the
                // checkpointer's, below) must not silently revert half an hour in.
                .idle_timeout(None)
                .max_lifetime(None)
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
        if let Some(file) = database_file.filter(|_| creating) {
            tracing::info!(path = %file.display(), "created a new, empty database");
        }
        Ok(Self { read, write, wal_budget_bytes: config.database.wal_budget_mib as i64 * 1024 * 1024, postgres: false })
    }

    async fn open_postgres(config: &Config, url: &str) -> anyhow::Result<Self> {
        let connect = |max_connections: u32| {
            let mut options = ConnectOptions::new(url.to_owned());
            // A database that is down must fail requests within seconds, not hold them.
            options
                .max_connections(max_connections)
                .min_connections(1)
                .connect_timeout(Duration::from_secs(5))
                .acquire_timeout(Duration::from_secs(5))
                .sqlx_logging(false);
            options
        };
        let cannot = || format!("cannot connect to PostgreSQL at {}", redact(url));
        let write = Database::connect(connect(POSTGRES_WRITE_CONNECTIONS)).await.with_context(cannot)?;
        let read = Database::connect(connect(config.database.read_connections)).await.with_context(cannot)?;
        Ok(Self { read, write, wal_budget_bytes: 0, postgres: true })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        Migrator::up(&self.write, None).await.context("database migration failed")
    }

    /// Names of the migrations and whether each is applied, oldest first.
    pub async fn migration_status(&self) -> anyhow::Result<Vec<(String, bool)>> {
        // Asking the migrator would create its table: a status check must not write.
        let tracked = if self.postgres {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'seaql_migrations'"
        } else {
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'"
        };
        let applied: Vec<String> = if self.read.query_one_raw(sql(&self.read, tracked, [])).await?.is_some() {
            Migrator::get_applied_migrations(&self.write).await?.iter().map(|m| m.name().to_owned()).collect()
        } else {
            Vec::new()
        };
        Ok(Migrator::migrations()
            .iter()
            .map(|m| (m.name().to_owned(), applied.iter().any(|a| a == m.name())))
            .collect())
    }

    /// Moves WAL checkpoints off the write path: SQLite would otherwise copy the log into the
    /// database inside whichever commit crosses 1000 pages, stalling every message in that batch.
    /// A background task checkpoints every second instead (PASSIVE: it never blocks the writer).
    ///
    /// Under steady writes a passive checkpoint never catches up with the newest frames, and the
    /// log only starts over once it has: measured, the WAL grew to 2.4 GB in a minute of
    /// scenario 1. So once the log passes `database.wal_budget_mib` the task also runs a
    /// RESTART checkpoint on the writer's own connection, between two batches; the next commit
    /// then writes from the start of the file again (reusing its blocks, which is also cheaper
    /// than growing it), and `journal_size_limit` trims anything beyond the limit.
    /// Durability is unchanged: a commit is durable once its WAL frames are synced.
    pub async fn checkpoint_in_background(&self) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        if self.postgres {
            return Ok(tokio::spawn(async {}));
        }
        self.write.execute_unprepared("PRAGMA wal_autocheckpoint = 0").await?;
        self.write.execute_unprepared(&format!("PRAGMA journal_size_limit = {}", self.wal_budget_bytes)).await?;
        let store = self.clone();
        Ok(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                if let Err(error) = store.checkpoint().await {
                    tracing::warn!(%error, "WAL checkpoint failed");
                }
            }
        }))
    }

    /// One round of the background checkpointer; returns the WAL's length in pages before it.
    pub async fn checkpoint(&self) -> Result<i64, sea_orm::DbErr> {
        let passive = self.read.query_one_raw(sql(&self.read, "PRAGMA wal_checkpoint(PASSIVE)", [])).await?;
        let wal_pages: i64 = passive.map(|row| row.try_get("", "log")).transpose()?.unwrap_or(0);
        if wal_pages * self.page_size().await? > self.wal_budget_bytes {
            // Catch up once more without blocking, so that the restart, which does block the
            // writer, has only the last few commits to copy.
            self.read.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await?;
            self.write.execute_unprepared("PRAGMA wal_checkpoint(RESTART)").await?;
        }
        Ok(wal_pages)
    }

    /// Copies the whole log into the database and closes every connection, so that the next start
    /// has no log to read back.
    pub async fn close(&self) -> Result<(), sea_orm::DbErr> {
        if !self.postgres {
            self.write.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
        self.read.close_by_ref().await?;
        self.write.close_by_ref().await
    }

    async fn page_size(&self) -> Result<i64, sea_orm::DbErr> {
        let row = self.read.query_one_raw(sql(&self.read, "PRAGMA page_size", [])).await?;
        Ok(row.map(|row| row.try_get("", "page_size")).transpose()?.unwrap_or(4096))
    }

    /// A write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so that another
    /// process writing meanwhile (the command line) makes it wait (`busy_timeout_ms`) instead of
    /// failing it on a stale snapshot. On PostgreSQL a plain transaction: rows lock as they are
    /// written, and the stream's writers queue on `messages::lock_stream`.
    pub async fn begin_write(&self) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
        let options = sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        sea_orm::TransactionTrait::begin_with_options(&self.write, options).await
    }

    /// Writes one consistent snapshot of the database to a new file at `path` (SQLite's
    /// `VACUUM INTO`), safe while the server keeps writing.
    pub async fn backup_to(&self, path: &str) -> Result<(), sea_orm::DbErr> {
        self.sqlite_only("`chatd backup`")?;
        self.read.execute_raw(sql(&self.read, "VACUUM INTO ?", [path.into()])).await.map(|_| ())
    }

    /// SQLite's verdict on the database's structure: `ok`, or what is wrong.
    pub async fn integrity_check(&self) -> Result<String, sea_orm::DbErr> {
        self.sqlite_only("the integrity check")?;
        let row = self.read.query_one_raw(sql(&self.read, "PRAGMA integrity_check", [])).await?;
        Ok(row.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or_default())
    }

    fn sqlite_only(&self, what: &str) -> Result<(), sea_orm::DbErr> {
        if self.postgres {
            return Err(sea_orm::DbErr::Custom(format!(
                "{what} works on a SQLite database; back PostgreSQL up with pg_dump (docs/operations.md, \"Backup and restore\")"
            )));
        }
        Ok(())
    }

    /// True when the database answers a trivial query.
    pub async fn is_ready(&self) -> bool {
        self.read.execute_unprepared("SELECT 1").await.is_ok()
    }
}

/// A raw statement with bound values for `db`'s backend. Statements are written with SQLite's `?`
/// placeholders; for PostgreSQL they become `$1`, `$2`… (quoted text is left alone).
pub fn sql<C: ConnectionTrait + ?Sized>(db: &C, text: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    let backend = db.get_database_backend();
    if backend != DbBackend::Postgres {
        return Statement::from_sql_and_values(backend, text, values);
    }
    let mut numbered = String::with_capacity(text.len() + text.len() / 4);
    let (mut n, mut quoted) = (0, false);
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                numbered.push(c);
            }
            '?' if !quoted => {
                n += 1;
                let _ = write!(numbered, "${n}");
            }
            _ => numbered.push(c),
        }
    }
    Statement::from_sql_and_values(backend, numbered, values)
}

/// A condition matching `username = ?` ignoring case: SQLite's column is NOCASE (and indexed so),
/// PostgreSQL's unique index is on `lower(username)`.
pub(crate) fn same_username<C: ConnectionTrait + ?Sized>(db: &C) -> &'static str {
    if is_postgres(db) { "lower(username) = lower(?)" } else { "username = ?" }
}

/// Whether `db` is PostgreSQL, for the few statements whose dialects differ.
pub fn is_postgres<C: ConnectionTrait + ?Sized>(db: &C) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// A database URL fit for logs: the password, if any, replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
