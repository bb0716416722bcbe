//! `chatd export`: the database as JSON Lines (see `store::transfer` for the format), a
//! consistent snapshot even while the server keeps writing.
use anyhow::{Context, bail};

use crate::{
    config::Config,
    store::{Store, transfer::export},
};

pub async fn run(config: Config, output: &str, force: bool) -> anyhow::Result<()> {
    if output != "-" && !force && std::path::Path::new(output).exists() {
        bail!("{output} already exists; choose a new file, or pass --force to overwrite it");
    }
    let store = Store::open(&config).await?;
    store.migrate().await?;
    if output == "-" {
        let stdout = std::io::stdout();
        export(&store, std::io::BufWriter::new(stdout.lock())).await
    } else {
        // Without --force, creating must fail if the file appeared since the check above.
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        if force { options.create(true).truncate(true) } else { options.create_new(true) };
        let file = options.open(output).with_context(|| format!("cannot create {output}"))?;
        export(&store, std::io::BufWriter::new(file)).await?;
        eprintln!("exported to {output}");
        Ok(())
    }
}

