//! `chatd import FILE`: reads `chatd export` output. Idempotent: users match by name,
//! conversations by their members, messages by (sender, client_id), so a second run changes
//! nothing. Into an empty database every id is kept, so export → import → export is identical.
//! Imported accounts have no password (exports carry none): set one with `chatd user passwd`.
//! It refuses to run while `chatd serve` uses the same database (see `store::files::DatabaseLock`).
use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait, Value};
use serde::Deserialize;

use super::export::EXPORT_FORMAT_VERSION;
use crate::{
    config::Config,
    store::{Store, files::DatabaseLock, messages::direct_key, sql},
};

/// Lines committed per transaction.
const CHUNK: usize = 5000;
/// Never verifies: imported accounts cannot sign in until an admin sets a password.
const NO_PASSWORD: &str = "!imported";

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Version { format: u32 },
    User { id: i64, username: String, is_admin: bool, disabled: bool, created_at: String },
    Conversation { id: i64, kind: String, members: Vec<String>, created_at: String },
    Message { id: i64, conversation_id: i64, from: String, body: String, client_id: String, created_at: String },
}

#[derive(Default)]
struct Counts {
    users: u64,
    conversations: u64,
    messages: u64,
    skipped: u64,
}

/// Export ids → ids in this database.
#[derive(Default)]
struct IdMap {
    users_by_name: HashMap<String, i64>,
    conversations: HashMap<i64, i64>,
}

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

async fn import(store: &Store, reader: impl BufRead) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let mut ids = IdMap::default();
    let mut txn = store.write.begin().await?;
    let mut in_chunk = 0;
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("line {number}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).with_context(|| format!("line {number}: not an export record"))?;
        if number == 1 && !matches!(parsed, Line::Version { .. }) {
            bail!("line 1: an export starts with a version line");
        }
        import_line(&txn, parsed, &mut ids, &mut counts).await.with_context(|| format!("line {number}"))?;
        in_chunk += 1;
        if in_chunk == CHUNK {
            txn.commit().await?;
            txn = store.write.begin().await?;
            in_chunk = 0;
        }
    }
    txn.commit().await?;
    Ok(counts)
}

async fn import_line(txn: &DatabaseTransaction, line: Line, ids: &mut IdMap, counts: &mut Counts) -> anyhow::Result<()> {
    match line {
        Line::Version { format } => {
            if format != EXPORT_FORMAT_VERSION {
                bail!("export format {format} is not supported (this chatd reads format {EXPORT_FORMAT_VERSION})");
            }
        }
        Line::User { id, username, is_admin, disabled, created_at } => {
            let username = crate::domain::Username::parse(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(existing) = scalar(txn, "SELECT id FROM users WHERE username = ?", [username.as_str().into()]).await? {
                ids.users_by_name.insert(username.to_string(), existing);
                counts.skipped += 1;
                return Ok(());
            }
            let keep_id = scalar(txn, "SELECT id FROM users WHERE id = ?", [id.into()]).await?.is_none();
            let new_id = insert_returning_id(
                txn,
                "INSERT INTO users (id, username, password_hash, is_admin, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                [keep_id.then_some(id).into(), username.as_str().into(), NO_PASSWORD.into(), is_admin.into(), disabled.into(), millis(&created_at)?.into()],
            )
            .await?;
            ids.users_by_name.insert(username.to_string(), new_id);
            counts.users += 1;
        }
        Line::Conversation { id, kind, members, created_at } => {
            let [a, b] = members.as_slice() else { bail!("conversation {id}: only direct conversations (2 members) are supported") };
            if kind != "direct" {
                bail!("conversation {id}: kind `{kind}` is not supported");
            }
            let (a, b) = (user_id(ids, a)?, user_id(ids, b)?);
            let key = direct_key(crate::domain::UserId(a), crate::domain::UserId(b));
            if let Some(existing) = scalar(txn, "SELECT id FROM conversations WHERE direct_key = ?", [key.clone().into()]).await? {
                ids.conversations.insert(id, existing);
                counts.skipped += 1;
                return Ok(());
            }
            let created = millis(&created_at)?;
            let keep_id = scalar(txn, "SELECT id FROM conversations WHERE id = ?", [id.into()]).await?.is_none();
            let new_id = insert_returning_id(
                txn,
                "INSERT INTO conversations (id, kind, direct_key, created_at) VALUES (?, 'direct', ?, ?) RETURNING id",
                [keep_id.then_some(id).into(), key.into(), created.into()],
            )
            .await?;
            txn.execute_raw(sql(
                "INSERT INTO conversation_members (conversation_id, user_id, last_read_id, joined_at) VALUES (?, ?, 0, ?), (?, ?, 0, ?)",
                [new_id.into(), a.into(), created.into(), new_id.into(), b.into(), created.into()],
            ))
            .await?;
            ids.conversations.insert(id, new_id);
            counts.conversations += 1;
        }
        Line::Message { id, conversation_id, from, body, client_id, created_at } => {
            let sender = user_id(ids, &from)?;
            let conversation = *ids
                .conversations
                .get(&conversation_id)
                .with_context(|| format!("message {id}: conversation {conversation_id} was not in the export before it"))?;
            let known = "SELECT id FROM messages WHERE sender_id = ? AND client_id = ?";
            if scalar(txn, known, [sender.into(), client_id.clone().into()]).await?.is_some() {
                counts.skipped += 1;
                return Ok(());
            }
            // Ids must keep increasing in commit order, so an old id is only kept above every stored one.
            let newest = scalar(txn, "SELECT COALESCE(MAX(id), 0) FROM messages", []).await?.unwrap_or(0);
            insert_returning_id(
                txn,
                "INSERT INTO messages (id, conversation_id, sender_id, client_id, body, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                [(id > newest).then_some(id).into(), conversation.into(), sender.into(), client_id.into(), body.into(), millis(&created_at)?.into()],
            )
            .await?;
            counts.messages += 1;
        }
    }
    Ok(())
}

fn user_id(ids: &IdMap, name: &str) -> anyhow::Result<i64> {
    ids.users_by_name.get(name).copied().with_context(|| format!("user `{name}` was not in the export before it is used"))
}

fn millis(rfc3339: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(rfc3339).with_context(|| format!("`{rfc3339}` is not an RFC 3339 time"))?.timestamp_millis())
}

async fn scalar(txn: &DatabaseTransaction, query: &str, values: impl IntoIterator<Item = Value>) -> anyhow::Result<Option<i64>> {
    let row = txn.query_one_raw(sql(query, values)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?)
}

async fn insert_returning_id(txn: &DatabaseTransaction, query: &str, values: impl IntoIterator<Item = Value>) -> anyhow::Result<i64> {
    scalar(txn, query, values).await?.context("insert returned no id")
}
