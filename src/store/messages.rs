//! The stream of messages and events: what the writer stores in its batch transactions, and what
//! history, `sync` and catch-up read back. Events (a member added, a rename) are rows of
//! `messages` too, with `kind = 'event'` and the change as JSON in `body`, so one counter numbers
//! both in commit order.
use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult};

use super::{is_postgres, sql};
use crate::{
    domain::{Change, ConversationId, Message, MessageId, UserId},
    error::{Error, Result},
};

/// Columns and joins that turn a `messages` row into a [`Message`]; `to` is the other member of a
/// direct conversation.
pub(super) const MESSAGE_SELECT: &str = "SELECT m.id, m.conversation_id, m.body, m.created_at, m.client_id, m.kind,
        su.username AS sender_name,
        CASE WHEN c.kind = 'direct' THEN (
            SELECT u.username FROM conversation_members o JOIN users u ON u.id = o.user_id
            WHERE o.conversation_id = m.conversation_id AND o.user_id != m.sender_id) END AS recipient_name
    FROM messages m
    JOIN users su ON su.id = m.sender_id
    JOIN conversations c ON c.id = m.conversation_id";

pub const TEXT: &str = "text";
pub const EVENT: &str = "event";

pub(super) fn message_from_row(row: &QueryResult) -> Result<Message, DbErr> {
    let kind: String = row.try_get("", "kind")?;
    let body: String = row.try_get("", "body")?;
    let event = if kind == EVENT {
        Some(serde_json::from_str::<Change>(&body).map_err(|e| DbErr::Custom(format!("event body: {e}")))?)
    } else {
        None
    };
    Ok(Message {
        id: row.try_get("", "id")?,
        conversation_id: row.try_get("", "conversation_id")?,
        from: row.try_get("", "sender_name")?,
        to: row.try_get("", "recipient_name")?,
        body: event.as_ref().map(Change::describe).unwrap_or(body),
        created_at: row.try_get("", "created_at")?,
        client_id: row.try_get("", "client_id")?,
        event,
    })
}

fn messages_from_rows(rows: Vec<QueryResult>) -> Result<Vec<Message>> {
    rows.iter().map(message_from_row).collect::<Result<_, DbErr>>().map_err(Error::from)
}

/// The key that makes a direct conversation between two users unique, whoever wrote first.
pub fn direct_key(a: UserId, b: UserId) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

pub async fn find_direct_conversation(db: &impl ConnectionTrait, a: UserId, b: UserId) -> Result<Option<ConversationId>> {
    let row = db
        .query_one_raw(sql(db, "SELECT id FROM conversations WHERE direct_key = ?", [direct_key(a, b).into()]))
        .await?;
    Ok(row.map(|r| r.try_get("", "id")).transpose()?)
}

/// A direct conversation with both its members, each a member from the start of the stream.
pub async fn create_direct_conversation(db: &impl ConnectionTrait, a: UserId, b: UserId, now: i64) -> Result<ConversationId> {
    let row = db
        .query_one_raw(sql(db,
            "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', ?, ?) RETURNING id",
            [direct_key(a, b).into(), now.into()],
        ))
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("INSERT .. RETURNING gave no row")))?;
    let id: ConversationId = row.try_get("", "id")?;
    db.execute_raw(sql(db,
        "INSERT INTO conversation_members (conversation_id, user_id, last_read_id, joined_at) VALUES (?, ?, 0, ?), (?, ?, 0, ?)",
        [id.into(), a.into(), now.into(), id.into(), b.into(), now.into()],
    ))
    .await?;
    db.execute_raw(sql(db,
        "INSERT INTO membership_periods (conversation_id, user_id, since_id) VALUES (?, ?, 0), (?, ?, 0)",
        [id.into(), a.into(), id.into(), b.into()],
    ))
    .await?;
    Ok(id)
}

/// A stream entry ready to be stored, with the id the writer gave it.
pub struct NewMessage<'a> {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub sender: UserId,
    pub client_id: &'a str,
    pub body: &'a str,
    pub created_at: i64,
    /// [`TEXT`] or [`EVENT`].
    pub kind: &'static str,
}

/// Most rows per statement. Chunks are powers of two up to this, so a handful of statement
/// shapes cover every batch and stay in the prepared-statement cache.
const MAX_ROWS_PER_STATEMENT: usize = 256;

/// Splits `items` into runs whose lengths are powers of two, largest first.
fn power_of_two_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let len = MAX_ROWS_PER_STATEMENT.min(1 << items.len().ilog2());
        let (chunk, rest) = items.split_at(len);
        items = rest;
        Some(chunk)
    })
}

/// The highest stream id ever given out, without waiting for writers. It never goes down, even
/// when the newest rows are deleted, so ids are never reused and clients' `after` cursors stay
/// meaningful: SQLite's AUTOINCREMENT remembers it, PostgreSQL's `stream_counter` holds it.
pub async fn last_assigned_message_id(db: &impl ConnectionTrait) -> Result<MessageId> {
    let query = if is_postgres(db) {
        "SELECT last_id AS id FROM stream_counter WHERE id = 1"
    } else {
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
                    COALESCE((SELECT MAX(id) FROM messages), 0)) AS id"
    };
    stream_id(db, query, []).await
}

async fn stream_id(db: &impl ConnectionTrait, query: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Result<MessageId> {
    let row = db.query_one_raw(sql(db, query, values)).await?;
    Ok(row.map(|r| r.try_get("", "id")).transpose()?.unwrap_or_default())
}

/// Takes the stream's write lock for `txn` and returns the last id given out. Whoever holds it
/// numbers the next entries and keeps it until commit, so ids become visible in the order they
/// were given, whichever node or process commits (docs/protocol.md, "Ids without gaps").
/// SQLite's `BEGIN IMMEDIATE` already holds the database's one write lock; on PostgreSQL it is
/// the counter row's.
pub async fn lock_stream(txn: &DatabaseTransaction) -> Result<MessageId> {
    if !is_postgres(txn) {
        return last_assigned_message_id(txn).await;
    }
    stream_id(txn, "SELECT last_id AS id FROM stream_counter WHERE id = 1 FOR UPDATE", []).await
}

/// Records that ids up to `last` are given out (on SQLite, AUTOINCREMENT does so as rows are
/// inserted). Never moves the counter back.
pub async fn advance_stream(txn: &DatabaseTransaction, last: MessageId) -> Result<()> {
    if is_postgres(txn) {
        txn.execute_raw(sql(txn, "UPDATE stream_counter SET last_id = ? WHERE id = 1 AND last_id < ?", [last.into(), last.into()]))
            .await?;
    }
    Ok(())
}

/// Conversations that events with `after < id <= up_to` changed: what a writer must forget when
/// another writer committed those ids.
pub async fn conversations_changed_between(db: &impl ConnectionTrait, after: MessageId, up_to: MessageId) -> Result<Vec<ConversationId>> {
    let rows = db
        .query_all_raw(sql(db,
            "SELECT DISTINCT conversation_id FROM messages WHERE id > ? AND id <= ? AND kind = 'event'",
            [after.into(), up_to.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "conversation_id").map_err(Error::from)).collect()
}

/// Which of these `(sender, client_id)` keys are already stored: resends.
pub async fn stored_keys(db: &impl ConnectionTrait, keys: &[(UserId, &str)]) -> Result<HashSet<(UserId, String)>> {
    let mut stored = HashSet::new();
    for chunk in power_of_two_chunks(keys) {
        let placeholders = vec!["(?, ?)"; chunk.len()].join(", ");
        let values = chunk.iter().flat_map(|(sender, client_id)| -> [sea_orm::Value; 2] { [(*sender).into(), (*client_id).into()] });
        let rows = db
            .query_all_raw(sql(db,
                &format!(
                    "SELECT m.sender_id, m.client_id FROM (VALUES {placeholders}) AS k
                     {} messages m ON m.sender_id = k.column1 AND m.client_id = k.column2",
                    keys_first(db)
                ),
                values,
            ))
            .await?;
        for row in rows {
            stored.insert((row.try_get("", "sender_id")?, row.try_get("", "client_id")?));
        }
    }
    Ok(stored)
}

/// Stores new stream entries under the ids they carry. Callers leave out keys already stored (see
/// [`stored_keys`]); a conflict fails the statement, and with it the caller's transaction.
pub async fn insert_messages(db: &impl ConnectionTrait, rows: &[NewMessage<'_>]) -> Result<()> {
    for chunk in power_of_two_chunks(rows) {
        let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let values = chunk.iter().flat_map(|row| -> [sea_orm::Value; 7] {
            [
                row.id.into(),
                row.conversation.into(),
                row.sender.into(),
                row.client_id.into(),
                row.body.into(),
                row.created_at.into(),
                row.kind.into(),
            ]
        });
        db.execute_raw(sql(db,
            &format!(
                "INSERT INTO messages (id, conversation_id, sender_id, client_id, body, created_at, kind) VALUES {placeholders}"
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// SQLite's CROSS JOIN keeps the left side as the outer loop (one index probe per key or period,
/// never a scan); PostgreSQL's planner needs no such hint and has no `CROSS JOIN … ON`.
fn keys_first(db: &impl ConnectionTrait) -> &'static str {
    if is_postgres(db) { "JOIN" } else { "CROSS JOIN" }
}

/// Records that `sender` has written in `conversation`; true if this was their first message.
pub async fn mark_posted(db: &impl ConnectionTrait, conversation: ConversationId, sender: UserId) -> Result<bool> {
    let changed = db
        .execute_raw(sql(db,
            "UPDATE conversation_members SET posted = TRUE WHERE conversation_id = ? AND user_id = ? AND posted = FALSE",
            [conversation.into(), sender.into()],
        ))
        .await?;
    Ok(changed.rows_affected() > 0)
}

/// A message already stored under `(sender, client_id)`.
pub async fn find_by_client_id(db: &impl ConnectionTrait, sender: UserId, client_id: &str) -> Result<Option<Message>> {
    let row = db
        .query_one_raw(sql(db, &format!("{MESSAGE_SELECT} WHERE m.sender_id = ? AND m.client_id = ?"), [sender.into(), client_id.into()]))
        .await?;
    Ok(row.as_ref().map(message_from_row).transpose()?)
}

/// Moves `reader`'s read marker forward to `up_to` (never past the newest entry, never
/// backwards); returns the marker as stored and whether it moved.
pub async fn mark_read(
    db: &impl ConnectionTrait,
    conversation: ConversationId,
    reader: UserId,
    up_to: MessageId,
) -> Result<(MessageId, bool)> {
    let smaller = if is_postgres(db) { "LEAST" } else { "MIN" };
    let target = format!("{smaller}(?, COALESCE((SELECT MAX(id) FROM messages WHERE conversation_id = ?), 0))");
    let moved = db
        .query_one_raw(sql(db,
            &format!(
                "UPDATE conversation_members SET last_read_id = {target}
                 WHERE conversation_id = ? AND user_id = ? AND last_read_id < {target} RETURNING last_read_id"
            ),
            [up_to.into(), conversation.into(), conversation.into(), reader.into(), up_to.into(), conversation.into()],
        ))
        .await?;
    if let Some(row) = moved {
        return Ok((row.try_get("", "last_read_id")?, true));
    }
    let row = db
        .query_one_raw(sql(db,
            "SELECT last_read_id FROM conversation_members WHERE conversation_id = ? AND user_id = ?",
            [conversation.into(), reader.into()],
        ))
        .await?;
    Ok((row.map(|r| r.try_get("", "last_read_id")).transpose()?.unwrap_or_default(), false))
}

/// Periods of `user`'s memberships joined to the stream entries they cover: what `user` may see
/// live, and so what `sync` replays. The periods drive the join (a user has few).
fn visible_to_user(db: &impl ConnectionTrait) -> String {
    format!(
        "FROM membership_periods p
    {} messages m ON m.conversation_id = p.conversation_id
        AND m.id >= p.since_id AND (p.until_id IS NULL OR m.id <= p.until_id)",
        keys_first(db)
    )
}

/// The newest stream id `user` could see, not counting entries after `ceiling`.
pub async fn latest_message_id_for(db: &impl ConnectionTrait, user: UserId, ceiling: MessageId) -> Result<MessageId> {
    let query = format!("SELECT COALESCE(MAX(m.id), 0) AS id {} WHERE p.user_id = ? AND m.id <= ?", visible_to_user(db));
    stream_id(db, &query, [user.into(), ceiling.into()]).await
}

/// Stream entries `user` could see with `after < id <= up_to`, oldest first, at most `limit`.
pub async fn messages_for_user_between(
    db: &impl ConnectionTrait,
    user: UserId,
    after: MessageId,
    up_to: MessageId,
    limit: u64,
) -> Result<Vec<Message>> {
    let select = MESSAGE_SELECT.replace("FROM messages m", &visible_to_user(db));
    let rows = db
        .query_all_raw(sql(db,
            &format!("{select} WHERE p.user_id = ? AND m.id > ? AND m.id <= ? ORDER BY m.id LIMIT ?"),
            [user.into(), after.into(), up_to.into(), (limit as i64).into()],
        ))
        .await?;
    messages_from_rows(rows)
}

/// Every stream entry with `after < id <= up_to`, oldest first, at most `limit`: what another
/// process committed, for the writer to deliver.
pub async fn messages_between_ids(db: &impl ConnectionTrait, after: MessageId, up_to: MessageId, limit: u64) -> Result<Vec<Message>> {
    let rows = db
        .query_all_raw(sql(db,
            &format!("{MESSAGE_SELECT} WHERE m.id > ? AND m.id <= ? ORDER BY m.id LIMIT ?"),
            [after.into(), up_to.into(), (limit as i64).into()],
        ))
        .await?;
    messages_from_rows(rows)
}

/// Entries of a conversation with `after < id < before`: the `limit` newest ones (newest first)
/// or the `limit` oldest ones (oldest first).
pub async fn messages_between(
    db: &impl ConnectionTrait,
    conversation: ConversationId,
    after: MessageId,
    before: Option<MessageId>,
    limit: u64,
    newest_first: bool,
) -> Result<Vec<Message>> {
    let order = if newest_first { "DESC" } else { "ASC" };
    let rows = db
        .query_all_raw(sql(db,
            &format!("{MESSAGE_SELECT} WHERE m.conversation_id = ? AND m.id > ? AND m.id < ? ORDER BY m.id {order} LIMIT ?"),
            [conversation.into(), after.into(), before.map_or(i64::MAX, |b| b.0).into(), (limit as i64).into()],
        ))
        .await?;
    messages_from_rows(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_few_statement_shapes() {
        let lengths = |n: usize| power_of_two_chunks(&vec![0; n]).map(<[i32]>::len).collect::<Vec<_>>();
        assert_eq!(lengths(0), Vec::<usize>::new());
        assert_eq!(lengths(7), [4, 2, 1]);
        assert_eq!(lengths(600), [256, 256, 64, 16, 8]);
    }
}
