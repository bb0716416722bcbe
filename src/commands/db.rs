//! `chatd db migrate` and `chatd db status`.
use crate::{cli::DbCommand, config::Config, store::Store};

pub async fn run(config: Config, command: DbCommand) -> anyhow::Result<()> {
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
