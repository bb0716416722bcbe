//! `chatd import FILE`: reads `chatd export` output (see `store::transfer`); running it twice
//! changes nothing. Imported accounts have no password (exports carry none): set one with
//! `chatd user passwd`. It refuses to run while a server holds the database.
use std::io::{BufRead, BufReader};

use anyhow::Context;

use crate::{
    config::Config,
    store::{Store, files::DatabaseLock, transfer::import},
};

pub async fn run(config: Config, input: &str) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(std::fs::File::open(input).with_context(|| format!("cannot open {input}"))?))
    };
    // A running server would neither see nor announce what is imported under it.
    let _lock = DatabaseLock::acquire(&config, "import")?;
    let store = Store::open(&config).await?;
    store.migrate().await?;
    let counts = import(&store, reader).await?;
    eprintln!(
        "imported {} user(s), {} conversation(s), {} message(s); {} already present",
        counts.users, counts.conversations, counts.messages, counts.skipped
    );
    Ok(())
}

