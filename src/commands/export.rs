//! `chatd export`: JSON Lines — a version line, then users (no password hashes), conversations
//! and messages, each in id order. Everything is read in one transaction, so the export is a
//! consistent snapshot even while the server keeps writing.
use std::io::Write;

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use serde_json::json;

use crate::{
    config::Config,
    domain::format_time,
    store::{Store, sql},
};

/// Messages read per query while exporting.
const PAGE: i64 = 5000;
pub const EXPORT_FORMAT_VERSION: u32 = 1;

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

pub async fn export(store: &Store, mut out: impl Write) -> anyhow::Result<()> {
    let txn = store.read.begin().await?;
    writeln!(
        out,
        "{}",
        // No timestamp here: exporting the same data twice gives the same bytes.
        json!({"type": "version", "format": EXPORT_FORMAT_VERSION, "chatd": env!("CARGO_PKG_VERSION")})
    )?;
    for row in txn
        .query_all_raw(sql("SELECT id, username, is_admin, disabled, created_at FROM users ORDER BY id", []))
        .await?
    {
        let line = json!({
            "type": "user",
            "id": row.try_get::<i64>("", "id")?,
            "username": row.try_get::<String>("", "username")?,
            "is_admin": row.try_get::<bool>("", "is_admin")?,
            "disabled": row.try_get::<bool>("", "disabled")?,
            "created_at": format_time(row.try_get("", "created_at")?),
        });
        writeln!(out, "{line}")?;
    }
    export_conversations(&txn, &mut out).await?;
    export_messages(&txn, &mut out).await?;
    out.flush()?;
    txn.commit().await?;
    Ok(())
}

async fn export_conversations(txn: &DatabaseTransaction, out: &mut impl Write) -> anyhow::Result<()> {
    let rows = txn
        .query_all_raw(sql(
            "SELECT c.id, c.kind, c.created_at, group_concat(u.username, char(10)) AS members
             FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id JOIN users u ON u.id = m.user_id
             GROUP BY c.id ORDER BY c.id",
            [],
        ))
        .await?;
    for row in rows {
        let mut members: Vec<String> =
            row.try_get::<String>("", "members")?.split('\n').map(str::to_owned).collect();
        members.sort();
        let line = json!({
            "type": "conversation",
            "id": row.try_get::<i64>("", "id")?,
            "kind": row.try_get::<String>("", "kind")?,
            "members": members,
            "created_at": format_time(row.try_get("", "created_at")?),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

async fn export_messages(txn: &DatabaseTransaction, out: &mut impl Write) -> anyhow::Result<()> {
    let mut after = 0i64;
    loop {
        let rows = txn
            .query_all_raw(sql(
                "SELECT m.id, m.conversation_id, u.username AS sender, m.body, m.client_id, m.created_at
                 FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.id > ? ORDER BY m.id LIMIT ?",
                [after.into(), PAGE.into()],
            ))
            .await?;
        for row in &rows {
            after = row.try_get("", "id")?;
            let line = json!({
                "type": "message",
                "id": after,
                "conversation_id": row.try_get::<i64>("", "conversation_id")?,
                "from": row.try_get::<String>("", "sender")?,
                "body": row.try_get::<String>("", "body")?,
                "client_id": row.try_get::<String>("", "client_id")?,
                "created_at": format_time(row.try_get("", "created_at")?),
            });
            writeln!(out, "{line}")?;
        }
        if (rows.len() as i64) < PAGE {
            return Ok(());
        }
    }
}
