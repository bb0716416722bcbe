//! `chatd export` and `chatd import`: the database as JSON Lines, and back.
//!
//! An export is a version line, then users (no password hashes), conversations (with members,
//! roles and read markers), the stream (messages and events) in id order, and last the membership
//! periods (which stream ids each member sees). It is read in one transaction, so it is a
//! consistent snapshot while the server keeps writing.
//!
//! Import is idempotent: users match by name, direct conversations by their two members, rooms by
//! name, groups by id and creation time, entries of the stream by (sender, `client_id`). Into an
//! empty database every id is kept, so export → import → export gives the same bytes. Format 1
//! (before groups and rooms) still imports.
use std::{
    collections::HashMap,
    io::{BufRead, Write},
};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    Store, is_postgres,
    messages::{advance_stream, direct_key, lock_stream},
    sql,
};
use crate::domain::{MessageId, UserId, Username, format_time};

/// Rows read per query while exporting.
const PAGE: i64 = 5000;
/// Lines committed per transaction while importing.
const CHUNK: usize = 5000;
/// Never verifies: imported accounts cannot sign in until an admin sets a password.
const NO_PASSWORD: &str = "!imported";
pub const FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct MemberLine {
    username: String,
    role: String,
    last_read_id: i64,
    joined_at: String,
    posted: bool,
}

/// A member as format 1 wrote it (a name), or as format 2 does.
#[derive(Deserialize)]
#[serde(untagged)]
enum AnyMember {
    Name(String),
    Full(MemberLine),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Version {
        format: u32,
    },
    User {
        id: i64,
        username: String,
        is_admin: bool,
        disabled: bool,
        created_at: String,
    },
    Conversation {
        id: i64,
        kind: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        topic: Option<String>,
        #[serde(default)]
        visibility: Option<String>,
        #[serde(default)]
        archived: bool,
        #[serde(default)]
        deleted_id: Option<i64>,
        members: Vec<AnyMember>,
        created_at: String,
    },
    Message {
        id: i64,
        conversation_id: i64,
        from: String,
        body: String,
        client_id: String,
        created_at: String,
        #[serde(default = "text_kind")]
        kind: String,
    },
    Membership {
        conversation_id: i64,
        username: String,
        since_id: i64,
        until_id: Option<i64>,
    },
}

fn text_kind() -> String {
    "text".into()
}

pub async fn export(store: &Store, mut out: impl Write) -> anyhow::Result<()> {
    let txn = store.read.begin().await?;
    // No timestamp here: exporting the same data twice gives the same bytes.
    writeln!(out, "{}", json!({"type": "version", "format": FORMAT, "chatd": env!("CARGO_PKG_VERSION")}))?;
    for row in txn.query_all_raw(sql(&txn, "SELECT id, username, is_admin, disabled, created_at FROM users ORDER BY id", [])).await? {
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
    export_periods(&txn, &mut out).await?;
    out.flush()?;
    txn.commit().await?;
    Ok(())
}

async fn export_conversations(txn: &DatabaseTransaction, out: &mut impl Write) -> anyhow::Result<()> {
    let rows = txn
        .query_all_raw(sql(txn,
            "SELECT id, kind, name, topic, visibility, archived, deleted_id, created_at FROM conversations ORDER BY id",
            [],
        ))
        .await?;
    let mut members: HashMap<i64, Vec<MemberLine>> = HashMap::new();
    let member_rows = txn
        .query_all_raw(sql(txn,
            "SELECT m.conversation_id, u.username, m.role, m.last_read_id, m.joined_at, m.posted
             FROM conversation_members m JOIN users u ON u.id = m.user_id ORDER BY m.conversation_id, u.username",
            [],
        ))
        .await?;
    for row in member_rows {
        members.entry(row.try_get("", "conversation_id")?).or_default().push(MemberLine {
            username: row.try_get("", "username")?,
            role: row.try_get("", "role")?,
            last_read_id: row.try_get("", "last_read_id")?,
            joined_at: format_time(row.try_get("", "joined_at")?),
            posted: row.try_get("", "posted")?,
        });
    }
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        let mut line = json!({
            "type": "conversation",
            "id": id,
            "kind": row.try_get::<String>("", "kind")?,
            "name": row.try_get::<Option<String>>("", "name")?,
            "topic": row.try_get::<Option<String>>("", "topic")?,
            "visibility": row.try_get::<Option<String>>("", "visibility")?,
            "archived": row.try_get::<bool>("", "archived")?,
            "members": members.remove(&id).unwrap_or_default(),
            "created_at": format_time(row.try_get("", "created_at")?),
        });
        if let Some(deleted) = row.try_get::<Option<i64>>("", "deleted_id")? {
            line["deleted_id"] = json!(deleted);
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

async fn export_messages(txn: &DatabaseTransaction, out: &mut impl Write) -> anyhow::Result<()> {
    let mut after = 0i64;
    loop {
        let rows = txn
            .query_all_raw(sql(txn,
                "SELECT m.id, m.conversation_id, u.username AS sender, m.body, m.client_id, m.created_at, m.kind
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
                "kind": row.try_get::<String>("", "kind")?,
            });
            writeln!(out, "{line}")?;
        }
        if (rows.len() as i64) < PAGE {
            return Ok(());
        }
    }
}

async fn export_periods(txn: &DatabaseTransaction, out: &mut impl Write) -> anyhow::Result<()> {
    let rows = txn
        .query_all_raw(sql(txn,
            "SELECT p.conversation_id, u.username, p.since_id, p.until_id FROM membership_periods p JOIN users u ON u.id = p.user_id
             ORDER BY p.conversation_id, u.username, p.since_id",
            [],
        ))
        .await?;
    for row in rows {
        let line = json!({
            "type": "membership",
            "conversation_id": row.try_get::<i64>("", "conversation_id")?,
            "username": row.try_get::<String>("", "username")?,
            "since_id": row.try_get::<i64>("", "since_id")?,
            "until_id": row.try_get::<Option<i64>>("", "until_id")?,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// What an import did.
#[derive(Default, Debug)]
pub struct Counts {
    pub users: u64,
    pub conversations: u64,
    pub messages: u64,
    pub skipped: u64,
}

/// Export ids → ids in this database.
#[derive(Default)]
struct IdMap {
    users_by_name: HashMap<String, i64>,
    conversations: HashMap<i64, i64>,
    /// Conversations that were already here: their members and periods are theirs.
    existing: std::collections::HashSet<i64>,
    /// Stream ids of events (periods and tombstones refer to them) → ids here.
    events: HashMap<i64, i64>,
    /// Removed conversations (export id) → their tombstone's export id, set once it is imported.
    tombstones: Vec<(i64, i64)>,
    /// Whether some entry of the stream got another id than in the export.
    renumbered: bool,
    /// The last stream id given out; the current transaction holds the stream's lock.
    newest: i64,
    format: u32,
}

pub async fn import(store: &Store, reader: impl BufRead) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let mut ids = IdMap::default();
    let mut txn = begin_chunk(store, &mut ids).await?;
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
            commit_chunk(txn, &ids).await?;
            txn = begin_chunk(store, &mut ids).await?;
            in_chunk = 0;
        }
    }
    for (conversation, tombstone) in std::mem::take(&mut ids.tombstones) {
        let (Some(conversation), Some(tombstone)) = (ids.conversations.get(&conversation), ids.events.get(&tombstone)) else { continue };
        txn.execute_raw(sql(&txn, "UPDATE conversations SET deleted_id = ? WHERE id = ?", [(*tombstone).into(), (*conversation).into()])).await?;
    }
    raise_id_sequences(&txn).await?;
    commit_chunk(txn, &ids).await?;
    Ok(counts)
}

/// A write transaction holding the stream's lock, as the writer's own: imported entries are
/// numbered after every id given out, and no one else numbers any meanwhile.
async fn begin_chunk(store: &Store, ids: &mut IdMap) -> anyhow::Result<DatabaseTransaction> {
    let txn = store.begin_write().await?;
    ids.newest = lock_stream(&txn).await?.0;
    Ok(txn)
}

async fn commit_chunk(txn: DatabaseTransaction, ids: &IdMap) -> anyhow::Result<()> {
    advance_stream(&txn, MessageId(ids.newest)).await?;
    Ok(txn.commit().await?)
}

/// PostgreSQL's identity sequences do not follow explicit ids (SQLite's AUTOINCREMENT does): move
/// each past the highest id kept, never back.
async fn raise_id_sequences(txn: &DatabaseTransaction) -> anyhow::Result<()> {
    if !is_postgres(txn) {
        return Ok(());
    }
    for table in ["users", "conversations"] {
        let raise = format!(
            "SELECT setval(s.name, t.top) FROM (SELECT pg_get_serial_sequence('{table}', 'id') AS name) s, (SELECT MAX(id) AS top FROM {table}) t
             WHERE t.top > COALESCE((SELECT last_value FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename) = s.name), 0)"
        );
        txn.execute_raw(sql(txn, &raise, [])).await?;
    }
    Ok(())
}

async fn import_line(txn: &DatabaseTransaction, line: Line, ids: &mut IdMap, counts: &mut Counts) -> anyhow::Result<()> {
    match line {
        Line::Version { format } => {
            if !(1..=FORMAT).contains(&format) {
                bail!("export format {format} is not supported (this chatd reads formats 1 to {FORMAT})");
            }
            ids.format = format;
        }
        Line::User { id, username, is_admin, disabled, created_at } => {
            let username = Username::parse(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(existing) = scalar(txn, &format!("SELECT id FROM users WHERE {}", super::same_username(txn)), [username.as_str().into()]).await? {
                ids.users_by_name.insert(username.to_string(), existing);
                counts.skipped += 1;
                return Ok(());
            }
            let keep_id = scalar(txn, "SELECT id FROM users WHERE id = ?", [id.into()]).await?.is_none();
            let new_id = insert_row(
                txn,
                "users",
                keep_id.then_some(id),
                &["username", "password_hash", "is_admin", "disabled", "created_at"],
                [username.as_str().into(), NO_PASSWORD.into(), is_admin.into(), disabled.into(), millis(&created_at)?.into()],
            )
            .await?;
            ids.users_by_name.insert(username.to_string(), new_id);
            counts.users += 1;
        }
        Line::Conversation { id, kind, name, topic, visibility, archived, deleted_id, members, created_at } => {
            import_conversation(txn, ids, counts, id, &kind, name, topic, visibility, archived, members, &created_at).await?;
            if let Some(tombstone) = deleted_id {
                ids.tombstones.push((id, tombstone));
            }
        }
        Line::Message { id, conversation_id, from, body, client_id, created_at, kind } => {
            let sender = user_id(ids, &from)?;
            let conversation = *ids
                .conversations
                .get(&conversation_id)
                .with_context(|| format!("message {id}: conversation {conversation_id} was not in the export before it"))?;
            if !matches!(kind.as_str(), "text" | "event") {
                bail!("message {id}: kind `{kind}` is not supported");
            }
            let known = "SELECT id FROM messages WHERE sender_id = ? AND client_id = ?";
            if let Some(existing) = scalar(txn, known, [sender.into(), client_id.clone().into()]).await? {
                if kind == "event" {
                    ids.events.insert(id, existing);
                }
                counts.skipped += 1;
                return Ok(());
            }
            // Ids must keep increasing in commit order, so an old id is only kept above every one given out.
            let new_id = if id > ids.newest { id } else { ids.newest + 1 };
            ids.newest = new_id;
            txn.execute_raw(sql(
                txn,
                "INSERT INTO messages (id, conversation_id, sender_id, client_id, body, created_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    new_id.into(),
                    conversation.into(),
                    sender.into(),
                    client_id.into(),
                    body.into(),
                    millis(&created_at)?.into(),
                    kind.clone().into(),
                ],
            ))
            .await?;
            if kind == "event" {
                ids.events.insert(id, new_id);
            }
            ids.renumbered |= new_id != id;
            counts.messages += 1;
        }
        Line::Membership { conversation_id, username, since_id, until_id } => {
            let Some(&conversation) = ids.conversations.get(&conversation_id) else {
                bail!("membership: conversation {conversation_id} was not in the export before it");
            };
            if ids.existing.contains(&conversation_id) {
                return Ok(());
            }
            let user = user_id(ids, &username)?;
            // A removed conversation keeps only its last event: the events its periods began with
            // are gone. Ids kept as they were still mean the same; renumbered ones are unknown,
            // and from the start is all there is left to see.
            let map = |id: i64| match ids.events.get(&id) {
                Some(mapped) => *mapped,
                None if !ids.renumbered => id,
                None => 0,
            };
            let (since, until) = (map(since_id), until_id.map(map));
            txn.execute_raw(sql(txn,
                "INSERT INTO membership_periods (conversation_id, user_id, since_id, until_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [conversation.into(), user.into(), since.into(), until.into()],
            ))
            .await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn import_conversation(
    txn: &DatabaseTransaction,
    ids: &mut IdMap,
    counts: &mut Counts,
    id: i64,
    kind: &str,
    name: Option<String>,
    topic: Option<String>,
    visibility: Option<String>,
    archived: bool,
    members: Vec<AnyMember>,
    created_at: &str,
) -> anyhow::Result<()> {
    let created = millis(created_at)?;
    let members: Vec<MemberLine> = members
        .into_iter()
        .map(|m| match m {
            AnyMember::Full(full) => full,
            AnyMember::Name(username) => {
                MemberLine { username, role: "member".into(), last_read_id: 0, joined_at: created_at.to_owned(), posted: false }
            }
        })
        .collect();
    let member_ids = members.iter().map(|m| user_id(ids, &m.username)).collect::<anyhow::Result<Vec<_>>>()?;
    let (direct_key, name_key) = match kind {
        "direct" => {
            let [a, b] = member_ids.as_slice() else { bail!("conversation {id}: a direct conversation has 2 members") };
            (Some(direct_key(UserId(*a), UserId(*b))), None)
        }
        "group" => (None, None),
        "room" => (None, name.as_ref().map(|n| n.to_lowercase())),
        other => bail!("conversation {id}: kind `{other}` is not supported"),
    };
    let existing = match (&direct_key, &name_key, kind) {
        (Some(key), ..) => scalar(txn, "SELECT id FROM conversations WHERE direct_key = ?", [key.clone().into()]).await?,
        (_, Some(key), _) => scalar(txn, "SELECT id FROM conversations WHERE name_key = ?", [key.clone().into()]).await?,
        _ => scalar(
            txn,
            "SELECT id FROM conversations WHERE id = ? AND kind = ? AND created_at = ?",
            [id.into(), kind.into(), created.into()],
        )
        .await?,
    };
    if let Some(existing) = existing {
        ids.conversations.insert(id, existing);
        ids.existing.insert(id);
        counts.skipped += 1;
        return Ok(());
    }
    let keep_id = scalar(txn, "SELECT id FROM conversations WHERE id = ?", [id.into()]).await?.is_none();
    let new_id = insert_row(
        txn,
        "conversations",
        keep_id.then_some(id),
        &["kind", "direct_key", "name", "name_key", "topic", "visibility", "archived", "created_at"],
        [
            kind.into(),
            direct_key.into(),
            name.into(),
            name_key.into(),
            topic.into(),
            visibility.into(),
            archived.into(),
            created.into(),
        ],
    )
    .await?;
    for (member, user) in members.iter().zip(&member_ids) {
        txn.execute_raw(sql(txn,
            "INSERT INTO conversation_members (conversation_id, user_id, last_read_id, joined_at, role, posted) VALUES (?, ?, ?, ?, ?, ?)",
            [new_id.into(), (*user).into(), member.last_read_id.into(), millis(&member.joined_at)?.into(), member.role.clone().into(), member.posted.into()],
        ))
        .await?;
    }
    if ids.format < 2 {
        // Format 1 had direct conversations only, each member seeing it from the start.
        for user in &member_ids {
            txn.execute_raw(sql(txn,
                "INSERT INTO membership_periods (conversation_id, user_id, since_id) VALUES (?, ?, 0)",
                [new_id.into(), (*user).into()],
            ))
            .await?;
        }
    }
    ids.conversations.insert(id, new_id);
    counts.conversations += 1;
    Ok(())
}

fn user_id(ids: &IdMap, name: &str) -> anyhow::Result<i64> {
    ids.users_by_name.get(name).copied().with_context(|| format!("user `{name}` was not in the export before it is used"))
}

fn millis(rfc3339: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(rfc3339).with_context(|| format!("`{rfc3339}` is not an RFC 3339 time"))?.timestamp_millis())
}

async fn scalar(txn: &DatabaseTransaction, query: &str, values: impl IntoIterator<Item = Value>) -> anyhow::Result<Option<i64>> {
    let row = txn.query_one_raw(sql(txn, query, values)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?)
}

/// Inserts a row under `id`, or without one the id the database gives it (PostgreSQL's identity
/// columns take no NULL for that); returns the row's id.
async fn insert_row<const N: usize>(
    txn: &DatabaseTransaction,
    table: &str,
    id: Option<i64>,
    columns: &[&str; N],
    values: [Value; N],
) -> anyhow::Result<i64> {
    let names: Vec<&str> = id.map(|_| "id").into_iter().chain(columns.iter().copied()).collect();
    let query = format!("INSERT INTO {table} ({}) VALUES ({}) RETURNING id", names.join(", "), vec!["?"; names.len()].join(", "));
    scalar(txn, &query, id.map(Value::from).into_iter().chain(values)).await?.context("insert returned no id")
}
