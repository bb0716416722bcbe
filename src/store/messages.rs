//! Queries about conversations and messages. The write side is only called by the message
//! pipeline (`domain::chat::pipeline`), inside its batch transaction.
use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use super::sql;
use crate::{
    domain::{ConversationId, ConversationSummary, Message, MessageId, UserId},
    error::{Error, Result},
};

/// Columns and joins that turn a `messages` row into a [`Message`] with both usernames.
/// `to` is the other member of the (direct) conversation.
const MESSAGE_SELECT: &str = "SELECT m.id, m.conversation_id, m.body, m.created_at, m.client_id,
        su.username AS sender_name, ru.username AS recipient_name
    FROM messages m
    JOIN users su ON su.id = m.sender_id
    JOIN conversation_members rm ON rm.conversation_id = m.conversation_id AND rm.user_id != m.sender_id
    JOIN users ru ON ru.id = rm.user_id";

fn message_from_row(row: &QueryResult) -> Result<Message, DbErr> {
    Ok(Message {
        id: row.try_get("", "id")?,
        from: row.try_get("", "sender_name")?,
        to: row.try_get("", "recipient_name")?,
        body: row.try_get("", "body")?,
        created_at: row.try_get("", "created_at")?,
        client_id: row.try_get("", "client_id")?,
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
        .query_one_raw(sql("SELECT id FROM conversations WHERE direct_key = ?", [direct_key(a, b).into()]))
        .await?;
    Ok(row.map(|r| r.try_get("", "id")).transpose()?)
}

pub async fn create_direct_conversation(db: &impl ConnectionTrait, a: UserId, b: UserId, now: i64) -> Result<ConversationId> {
    let row = db
        .query_one_raw(sql(
            "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', ?, ?) RETURNING id",
            [direct_key(a, b).into(), now.into()],
        ))
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("INSERT .. RETURNING gave no row")))?;
    let id: ConversationId = row.try_get("", "id")?;
    db.execute_raw(sql(
        "INSERT INTO conversation_members (conversation_id, user_id, last_read_id, joined_at) VALUES (?, ?, 0, ?), (?, ?, 0, ?)",
        [id.into(), a.into(), now.into(), id.into(), b.into(), now.into()],
    ))
    .await?;
    Ok(id)
}

/// A message ready to be stored, with the id the writer gave it.
pub struct NewMessage<'a> {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub sender: UserId,
    pub client_id: &'a str,
    pub body: &'a str,
    pub created_at: i64,
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

/// The highest message id ever given out. AUTOINCREMENT remembers it even after the newest
/// messages are deleted, so ids are never reused and clients' `after` cursors stay meaningful.
pub async fn last_assigned_message_id(db: &impl ConnectionTrait) -> Result<MessageId> {
    let row = db
        .query_one_raw(sql(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
                        COALESCE((SELECT MAX(id) FROM messages), 0)) AS id",
            [],
        ))
        .await?;
    Ok(row.map(|r| r.try_get("", "id")).transpose()?.unwrap_or(0))
}

/// Which of these `(sender, client_id)` keys are already stored: resends.
pub async fn stored_keys(db: &impl ConnectionTrait, keys: &[(UserId, &str)]) -> Result<HashSet<(UserId, String)>> {
    let mut stored = HashSet::new();
    for chunk in power_of_two_chunks(keys) {
        let placeholders = vec!["(?, ?)"; chunk.len()].join(", ");
        let values = chunk.iter().flat_map(|(sender, client_id)| -> [sea_orm::Value; 2] { [(*sender).into(), (*client_id).into()] });
        // CROSS JOIN keeps the keys as the outer loop: one index probe per key, never a scan.
        let rows = db
            .query_all_raw(sql(
                &format!(
                    "SELECT m.sender_id, m.client_id FROM (VALUES {placeholders}) AS k
                     CROSS JOIN messages m ON m.sender_id = k.column1 AND m.client_id = k.column2"
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

/// Stores new messages under the ids they carry. Callers leave out keys already stored (see
/// [`stored_keys`]); a conflict fails the statement, and with it the caller's transaction.
pub async fn insert_messages(db: &impl ConnectionTrait, rows: &[NewMessage<'_>]) -> Result<()> {
    for chunk in power_of_two_chunks(rows) {
        let placeholders = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let values = chunk.iter().flat_map(|row| -> [sea_orm::Value; 6] {
            [
                row.id.into(),
                row.conversation.into(),
                row.sender.into(),
                row.client_id.into(),
                row.body.into(),
                row.created_at.into(),
            ]
        });
        db.execute_raw(sql(
            &format!(
                "INSERT INTO messages (id, conversation_id, sender_id, client_id, body, created_at) VALUES {placeholders}"
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Records that `sender` has written in `conversation`; true if this was their first message.
pub async fn mark_posted(db: &impl ConnectionTrait, conversation: ConversationId, sender: UserId) -> Result<bool> {
    let changed = db
        .execute_raw(sql(
            "UPDATE conversation_members SET posted = 1 WHERE conversation_id = ? AND user_id = ? AND posted = 0",
            [conversation.into(), sender.into()],
        ))
        .await?;
    Ok(changed.rows_affected() > 0)
}

/// A message already stored under `(sender, client_id)`, with the conversation it belongs to.
pub async fn find_by_client_id(
    db: &impl ConnectionTrait,
    sender: UserId,
    client_id: &str,
) -> Result<Option<(ConversationId, Message)>> {
    let row = db
        .query_one_raw(sql(
            &format!("{MESSAGE_SELECT} WHERE m.sender_id = ? AND m.client_id = ?"),
            [sender.into(), client_id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some((row.try_get("", "conversation_id")?, message_from_row(&row)?)))
}

/// Moves `reader`'s read marker forward to `up_to` (never past the newest message, never
/// backwards); returns the marker as stored and whether it moved.
pub async fn mark_read(
    db: &impl ConnectionTrait,
    conversation: ConversationId,
    reader: UserId,
    up_to: MessageId,
) -> Result<(MessageId, bool)> {
    let target = "MIN(?, COALESCE((SELECT MAX(id) FROM messages WHERE conversation_id = ?), 0))";
    let moved = db
        .query_one_raw(sql(
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
        .query_one_raw(sql(
            "SELECT last_read_id FROM conversation_members WHERE conversation_id = ? AND user_id = ?",
            [conversation.into(), reader.into()],
        ))
        .await?;
    Ok((row.map(|r| r.try_get("", "last_read_id")).transpose()?.unwrap_or(0), false))
}

pub async fn latest_message_id(db: &impl ConnectionTrait) -> Result<MessageId> {
    let row = db.query_one_raw(sql("SELECT COALESCE(MAX(id), 0) AS id FROM messages", [])).await?;
    Ok(row.map(|r| r.try_get("", "id")).transpose()?.unwrap_or(0))
}

/// The newest message id involving `user`, not counting messages after `ceiling`.
pub async fn latest_message_id_for(db: &impl ConnectionTrait, user: UserId, ceiling: MessageId) -> Result<MessageId> {
    let row = db
        .query_one_raw(sql(
            "SELECT COALESCE(MAX(m.id), 0) AS id FROM conversation_members me
             JOIN messages m ON m.conversation_id = me.conversation_id AND m.id <= ?
             WHERE me.user_id = ?",
            [ceiling.into(), user.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get("", "id")).transpose()?.unwrap_or(0))
}

/// Messages involving `user` with `after < id <= up_to`, oldest first, at most `limit`.
pub async fn messages_for_user_between(
    db: &impl ConnectionTrait,
    user: UserId,
    after: MessageId,
    up_to: MessageId,
    limit: u64,
) -> Result<Vec<Message>> {
    let rows = db
        .query_all_raw(sql(
            &format!(
                "{MESSAGE_SELECT} WHERE m.conversation_id IN (SELECT conversation_id FROM conversation_members WHERE user_id = ?)
                 AND m.id > ? AND m.id <= ? ORDER BY m.id LIMIT ?"
            ),
            [user.into(), after.into(), up_to.into(), (limit as i64).into()],
        ))
        .await?;
    messages_from_rows(rows)
}

/// Messages of a conversation with `after < id < before`: the `limit` newest ones (newest first)
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
        .query_all_raw(sql(
            &format!("{MESSAGE_SELECT} WHERE m.conversation_id = ? AND m.id > ? AND m.id < ? ORDER BY m.id {order} LIMIT ?"),
            [conversation.into(), after.into(), before.unwrap_or(i64::MAX).into(), (limit as i64).into()],
        ))
        .await?;
    messages_from_rows(rows)
}

/// Unread counts stop here, so a never-read conversation with millions of messages stays cheap.
pub const UNREAD_CAP: i64 = 9999;

/// `user`'s conversations, most recent first, with unread counts (up to [`UNREAD_CAP`]) and the
/// last message.
pub async fn conversations_of(db: &impl ConnectionTrait, user: UserId) -> Result<Vec<ConversationSummary>> {
    let rows = db
        .query_all_raw(sql(
            "SELECT c.id AS conversation_id, peer.user_id AS peer_id, pu.username AS peer,
                me.last_read_id AS read_up_to, peer.last_read_id AS peer_read_up_to,
                (SELECT COUNT(*) FROM (SELECT 1 FROM messages x WHERE x.conversation_id = c.id AND x.id > me.last_read_id
                    AND x.sender_id != me.user_id LIMIT ?)) AS unread,
                m.id AS message_id, m.body, m.created_at, m.client_id, m.sender_id
             FROM conversation_members me
             JOIN conversations c ON c.id = me.conversation_id
             JOIN conversation_members peer ON peer.conversation_id = c.id AND peer.user_id != me.user_id
             JOIN users pu ON pu.id = peer.user_id
             LEFT JOIN messages m ON m.id = (SELECT MAX(id) FROM messages WHERE conversation_id = c.id)
             WHERE me.user_id = ?
             ORDER BY COALESCE(m.id, 0) DESC, c.id DESC",
            [UNREAD_CAP.into(), user.into()],
        ))
        .await?;
    let me_name = rows_owner_name(db, user).await?;
    rows.iter()
        .map(|row| {
            let peer: String = row.try_get("", "peer")?;
            let message_id: Option<i64> = row.try_get("", "message_id")?;
            let last_message = match message_id {
                None => None,
                Some(id) => {
                    let sender: i64 = row.try_get("", "sender_id")?;
                    let (from, to) =
                        if sender == user { (me_name.clone(), peer.clone()) } else { (peer.clone(), me_name.clone()) };
                    Some(Message {
                        id,
                        from,
                        to,
                        body: row.try_get("", "body")?,
                        created_at: row.try_get("", "created_at")?,
                        client_id: row.try_get("", "client_id")?,
                    })
                }
            };
            Ok(ConversationSummary {
                conversation_id: row.try_get("", "conversation_id")?,
                peer_id: row.try_get("", "peer_id")?,
                read_up_to: row.try_get("", "read_up_to")?,
                peer_read_up_to: row.try_get("", "peer_read_up_to")?,
                unread: row.try_get::<i64>("", "unread")? as u64,
                peer,
                last_message,
            })
        })
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}

async fn rows_owner_name(db: &impl ConnectionTrait, user: UserId) -> Result<String> {
    let row = db.query_one_raw(sql("SELECT username FROM users WHERE id = ?", [user.into()])).await?;
    Ok(row.map(|r| r.try_get("", "username")).transpose()?.unwrap_or_default())
}
