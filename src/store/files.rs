//! Where the database lives on disk, and the lock that keeps `chatd import` off a served database.
use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::PathBuf,
};

use anyhow::{Context, bail};

use crate::config::Config;

/// The database file the configuration names, or `None` for an in-memory database.
pub fn database_file(config: &Config) -> Option<PathBuf> {
    if config.database.url.is_empty() {
        return Some(config.data_dir.join("chat.db"));
    }
    let url = config.database.url.as_str();
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// An exclusive advisory lock on `<database>.lock`, held for as long as this value lives.
///
/// `chatd serve` holds it while serving and `chatd import` while importing, so neither starts
/// while the other runs. The operating system releases it when the process exits, however it
/// exits, so a crash never leaves a stale lock behind; the file itself may stay and is harmless.
///
/// On PostgreSQL it is an advisory lock of the database, held by a connection of its own:
/// shared by every serving node, exclusive for an import. PostgreSQL releases it when that
/// connection ends, with the process or not.
pub struct DatabaseLock {
    _held: Held,
}

enum Held {
    File { _file: File },
    /// Dropping it ends the thread that holds the lock's connection.
    Postgres { _release: std::sync::mpsc::Sender<()> },
}

impl DatabaseLock {
    /// Takes the lock for `purpose` (`serve`, `import`), or explains who holds it.
    pub fn acquire(config: &Config, purpose: &str) -> anyhow::Result<Option<Self>> {
        let url = config.database_url();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return postgres_lock::acquire(url, purpose).map(|release| Some(Self { _held: Held::Postgres { _release: release } }));
        }
        let Some(database) = database_file(config) else { return Ok(None) };
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
        }
        let path = PathBuf::from(format!("{}.lock", database.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "another chatd process".to_owned() } else { format!("chatd {holder}") };
                let advice = if purpose == "serve" {
                    "one server per database: stop that one, or give this one its own data_dir"
                } else {
                    "stop it, run this again, then start it again"
                };
                bail!(
                    "{holder} is using the database {} (it holds {}); `chatd {purpose}` cannot run beside it: {advice}",
                    database.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
        // Only the holder writes, so whoever is refused can say who is in the way.
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{purpose} (pid {})", std::process::id())?;
        Ok(Some(Self { _held: Held::File { _file: file } }))
    }
}

mod postgres_lock {
    use std::sync::mpsc;

    use anyhow::{Context, bail};
    use sea_orm::sqlx::{self, ConnectOptions, Connection, postgres::{PgConnectOptions, PgConnection}};

    use crate::store::redact;

    /// The advisory lock's key ("chat"), the same for every chatd on a database.
    const KEY: i64 = 0x6368_6174;

    /// Takes the lock on a thread of its own, which holds the connection until the returned sender
    /// is dropped: callers need not be async, and the lock outlives no one's runtime.
    pub fn acquire(url: String, purpose: &str) -> anyhow::Result<mpsc::Sender<()>> {
        let (taken_tx, taken) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let purpose = purpose.to_owned();
        std::thread::Builder::new().name("database-lock".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => return drop(taken_tx.send(Err(anyhow::Error::from(error)))),
            };
            match runtime.block_on(lock(&url, &purpose)) {
                Ok(connection) => {
                    let _ = taken_tx.send(Ok(()));
                    let _ = released.recv();
                    let _ = runtime.block_on(connection.close());
                }
                Err(error) => drop(taken_tx.send(Err(error))),
            }
        })?;
        taken.recv().context("the database lock's thread stopped")??;
        Ok(release)
    }

    async fn lock(url: &str, purpose: &str) -> anyhow::Result<PgConnection> {
        let name = format!("chatd {purpose} (pid {})", std::process::id());
        let options: PgConnectOptions = url.parse().with_context(|| format!("database.url {}", redact(url)))?;
        let mut connection = options
            .application_name(&name)
            .connect()
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
        // Nodes share the database; an import must have it alone.
        let take = if purpose == "serve" { "SELECT pg_try_advisory_lock_shared($1)" } else { "SELECT pg_try_advisory_lock($1)" };
        let taken: bool = sqlx::query_scalar(take).bind(KEY).fetch_one(&mut connection).await?;
        if taken {
            return Ok(connection);
        }
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1 AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY a.backend_start LIMIT 1",
        )
        .bind(KEY as i32)
        .fetch_optional(&mut connection)
        .await?;
        let holder = holder.filter(|h| h.starts_with("chatd ")).unwrap_or_else(|| "another chatd process".to_owned());
        let advice = if purpose == "serve" {
            "wait until it has finished, then start this again"
        } else {
            "stop every server on this database, run this again, then start them again"
        };
        bail!("{holder} is using the database {}; `chatd {purpose}` cannot run beside it: {advice}", redact(url));
    }
}
