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
pub struct DatabaseLock {
    _file: File,
}

impl DatabaseLock {
    /// Takes the lock for `purpose` (`serve`, `import`), or explains who holds it.
    pub fn acquire(config: &Config, purpose: &str) -> anyhow::Result<Option<Self>> {
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
        Ok(Some(Self { _file: file }))
    }
}
