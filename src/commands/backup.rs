//! `chatd backup -o FILE`: SQLite's `VACUUM INTO` copies one consistent snapshot while the server
//! keeps serving; the copy is then checked with `PRAGMA integrity_check`. An existing file is only
//! replaced with `--force`, as with `chatd export -o`.
use std::path::Path;

use anyhow::{Context, bail};

use crate::{config::Config, store::Store};

pub async fn run(config: Config, output: &Path, force: bool) -> anyhow::Result<()> {
    let store = Store::open(&config).await?;
    if store.is_postgres() {
        bail!(
            "`chatd backup` copies a SQLite database; this one is on PostgreSQL: back it up with pg_dump \
             (or continuous archiving), or take `chatd export` for a portable copy"
        );
    }
    if output.exists() {
        if !force {
            bail!("{} already exists; choose a new file, or pass --force to overwrite it", output.display());
        }
        // `VACUUM INTO` writes only to a new (or empty) file.
        std::fs::remove_file(output).with_context(|| format!("cannot replace {}", output.display()))?;
    }
    let target = output.to_str().context("the backup path must be valid UTF-8")?;
    store.backup_to(target).await.with_context(|| format!("cannot write the backup to {}", output.display()))?;
    let mut copy = config.clone();
    copy.database.url = format!("sqlite://{target}?mode=rw");
    let verdict = Store::open(&copy).await?.integrity_check().await?;
    if verdict != "ok" {
        bail!("the backup in {} failed its integrity check: {verdict}", output.display());
    }
    eprintln!("backed up to {} (integrity check ok)", output.display());
    Ok(())
}
