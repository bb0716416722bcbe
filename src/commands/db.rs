//! `chatd db migrate` and `chatd db status`.
use anyhow::bail;

use crate::{
    cli::DbCommand,
    config::Config,
    store::{Store, files},
};

pub async fn run(config: Config, command: DbCommand) -> anyhow::Result<()> {
    if let DbCommand::Status { .. } = command {
        // Status only reads: it must not leave a new data directory and database behind.
        if let Some(file) = files::database_file(&config).filter(|file| !file.is_file()) {
            bail!("no database at {}; `chatd serve` or `chatd db migrate` creates it", file.display());
        }
    }
    let store = Store::open(&config).await?;
    match command {
        DbCommand::Migrate => {
            let pending = store.migration_status().await?.iter().filter(|(_, applied)| !applied).count();
            store.migrate().await?;
            eprintln!("applied {pending} migration(s); the database is up to date");
        }
        DbCommand::Status { json } => {
            for (name, applied) in store.migration_status().await? {
                if json {
                    println!("{}", serde_json::json!({"name": name, "applied": applied}));
                } else {
                    println!("{}\t{name}", if applied { "applied" } else { "pending" });
                }
            }
        }
    }
    Ok(())
}
