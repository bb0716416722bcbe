//! Conversations of every kind: their state and members as the writer checks and changes them, and
//! the views members read (the conversation list, one conversation, the public-room directory).
use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};

use super::{is_postgres, messages::message_from_row, sql};
use crate::{
    domain::{
        ConversationId, ConversationView, DirectoryEntry, Kind, Member, MessageId, Role, UserId, Visibility,
    },
    error::{Error, Result},
};

/// Unread counts stop here, so a never-read conversation with millions of messages stays cheap.
pub const UNREAD_CAP: i64 = 9999;

/// A conversation as the writer needs it to decide and apply a change.
#[derive(Clone, Debug)]
pub struct ConversationState {
    pub id: ConversationId,
    pub kind: Kind,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub visibility: Option<Visibility>,
    pub archived: bool,
    pub deleted: bool,
    pub members: Vec<StateMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMember {
    pub id: UserId,
    pub username: String,
    pub role: Role,
}

impl ConversationState {
    pub fn member(&self, user: UserId) -> Option<&StateMember> {
        self.members.iter().find(|m| m.id == user)
    }

    pub fn owners(&self) -> usize {
        self.members.iter().filter(|m| m.role == Role::Owner).count()
    }
}

fn kind_of(row: &QueryResult) -> Result<Kind, DbErr> {
    let kind: String = row.try_get("", "kind")?;
    Kind::parse(&kind).ok_or_else(|| DbErr::Custom(format!("unknown conversation kind {kind}")))
}

fn visibility_of(row: &QueryResult) -> Result<Option<Visibility>, DbErr> {
    let visibility: Option<String> = row.try_get("", "visibility")?;
    Ok(visibility.as_deref().and_then(Visibility::parse))
}

fn role_of(row: &QueryResult) -> Result<Role, DbErr> {
    let role: String = row.try_get("", "role")?;
    Role::parse(&role).map_err(|_| DbErr::Custom(format!("unknown role {role}")))
}

/// The conversation with its members, or `None` if it never existed.
pub async fn load_state(db: &impl ConnectionTrait, id: ConversationId) -> Result<Option<ConversationState>> {
    let Some(row) = db
        .query_one_raw(sql(db,
            "SELECT id, kind, name, topic, visibility, archived, deleted_id FROM conversations WHERE id = ?",
            [id.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let members = db
        .query_all_raw(sql(db,
            "SELECT u.id, u.username, cm.role FROM conversation_members cm JOIN users u ON u.id = cm.user_id
             WHERE cm.conversation_id = ? ORDER BY u.id",
            [id.into()],
        ))
        .await?
        .iter()
        .map(|r| Ok(StateMember { id: r.try_get("", "id")?, username: r.try_get("", "username")?, role: role_of(r)? }))
        .collect::<Result<Vec<_>, DbErr>>()?;
    Ok(Some(ConversationState {
        id,
        kind: kind_of(&row)?,
        name: row.try_get("", "name")?,
        topic: row.try_get("", "topic")?,
        visibility: visibility_of(&row)?,
        archived: row.try_get("", "archived")?,
        deleted: row.try_get::<Option<i64>>("", "deleted_id")?.is_some(),
        members,
    }))
}

/// The members of a conversation (ids only), or `None` if it does not exist or was removed; with
/// its kind and whether it is archived. What the writer caches for every send.
pub async fn load_audience(db: &impl ConnectionTrait, id: ConversationId) -> Result<Option<(Kind, bool, Vec<(UserId, String)>)>> {
    let Some(row) =
        db.query_one_raw(sql(db, "SELECT kind, archived FROM conversations WHERE id = ? AND deleted_id IS NULL", [id.into()])).await?
    else {
        return Ok(None);
    };
    let members = db
        .query_all_raw(sql(db,
            "SELECT u.id, u.username FROM conversation_members cm JOIN users u ON u.id = cm.user_id
             WHERE cm.conversation_id = ? ORDER BY u.id",
            [id.into()],
        ))
        .await?
        .iter()
        .map(|r| Ok((r.try_get("", "id")?, r.try_get("", "username")?)))
        .collect::<Result<Vec<_>, DbErr>>()?;
    Ok(Some((kind_of(&row)?, row.try_get("", "archived")?, members)))
}

/// A new group or room, without members yet.
pub async fn create(
    db: &impl ConnectionTrait,
    kind: Kind,
    name: Option<&str>,
    topic: Option<&str>,
    visibility: Option<Visibility>,
    now: i64,
) -> Result<ConversationId> {
    let name_key = (kind == Kind::Room).then(|| name.map(str::to_lowercase)).flatten();
    let row = db
        .query_one_raw(sql(db,
            "INSERT INTO conversations (kind, name, name_key, topic, visibility, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            [
                kind.as_str().into(),
                name.map(str::to_owned).into(),
                name_key.into(),
                topic.map(str::to_owned).into(),
                visibility.map(Visibility::as_str).into(),
                now.into(),
            ],
        ))
        .await
        .map_err(name_taken)?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("INSERT .. RETURNING gave no row")))?;
    Ok(row.try_get("", "id")?)
}

fn name_taken(error: DbErr) -> Error {
    match error.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Error::NameTaken,
        _ => Error::from(error),
    }
}

/// Whether a live room has this name (ignoring case).
pub async fn room_name_taken(db: &impl ConnectionTrait, name: &str) -> Result<bool> {
    let row = db.query_one_raw(sql(db, "SELECT 1 AS x FROM conversations WHERE name_key = ?", [name.to_lowercase().into()])).await?;
    Ok(row.is_some())
}

/// A live room by name, ignoring case (for the command line).
pub async fn find_room_by_name(db: &impl ConnectionTrait, name: &str) -> Result<Option<ConversationId>> {
    let row = db
        .query_one_raw(sql(db,
            "SELECT id FROM conversations WHERE name_key = ? AND kind = 'room' AND deleted_id IS NULL",
            [name.to_lowercase().into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get("", "id")).transpose()?)
}

/// Adds `user` with `role`; they see the stream from `since` (the event that added them) on.
pub async fn add_member(
    db: &impl ConnectionTrait,
    conversation: ConversationId,
    user: UserId,
    role: Role,
    since: MessageId,
    now: i64,
) -> Result<()> {
    db.execute_raw(sql(db,
        "INSERT INTO conversation_members (conversation_id, user_id, last_read_id, joined_at, role) VALUES (?, ?, 0, ?, ?)",
        [conversation.into(), user.into(), now.into(), role.as_str().into()],
    ))
    .await?;
    db.execute_raw(sql(db,
        "INSERT INTO membership_periods (conversation_id, user_id, since_id) VALUES (?, ?, ?)",
        [conversation.into(), user.into(), since.into()],
    ))
    .await?;
    Ok(())
}

/// Removes `user`; the event at `until` (their removal) is the last they see.
pub async fn remove_member(db: &impl ConnectionTrait, conversation: ConversationId, user: UserId, until: MessageId) -> Result<()> {
    db.execute_raw(sql(db,
        "DELETE FROM conversation_members WHERE conversation_id = ? AND user_id = ?",
        [conversation.into(), user.into()],
    ))
    .await?;
    db.execute_raw(sql(db,
        "UPDATE membership_periods SET until_id = ? WHERE conversation_id = ? AND user_id = ? AND until_id IS NULL",
        [until.into(), conversation.into(), user.into()],
    ))
    .await?;
    Ok(())
}

pub async fn set_role(db: &impl ConnectionTrait, conversation: ConversationId, user: UserId, role: Role) -> Result<()> {
    db.execute_raw(sql(db,
        "UPDATE conversation_members SET role = ? WHERE conversation_id = ? AND user_id = ?",
        [role.as_str().into(), conversation.into(), user.into()],
    ))
    .await?;
    Ok(())
}

pub async fn rename(db: &impl ConnectionTrait, conversation: ConversationId, kind: Kind, name: &str) -> Result<()> {
    let name_key = (kind == Kind::Room).then(|| name.to_lowercase());
    db.execute_raw(sql(db,
        "UPDATE conversations SET name = ?, name_key = ? WHERE id = ?",
        [name.into(), name_key.into(), conversation.into()],
    ))
    .await
    .map_err(name_taken)?;
    Ok(())
}

pub async fn set_topic(db: &impl ConnectionTrait, conversation: ConversationId, topic: &str) -> Result<()> {
    let topic = (!topic.is_empty()).then(|| topic.to_owned());
    db.execute_raw(sql(db, "UPDATE conversations SET topic = ? WHERE id = ?", [topic.into(), conversation.into()])).await?;
    Ok(())
}

pub async fn set_archived(db: &impl ConnectionTrait, conversation: ConversationId, archived: bool) -> Result<()> {
    db.execute_raw(sql(db, "UPDATE conversations SET archived = ? WHERE id = ?", [archived.into(), conversation.into()])).await?;
    Ok(())
}

/// Removes a conversation: its messages and members go; the row stays as a tombstone with the
/// removal event (`tombstone`), so that `sync` can still tell its members it is gone.
pub async fn remove(db: &impl ConnectionTrait, conversation: ConversationId, tombstone: MessageId) -> Result<()> {
    db.execute_raw(sql(db, "DELETE FROM messages WHERE conversation_id = ? AND id != ?", [conversation.into(), tombstone.into()])).await?;
    db.execute_raw(sql(db,
        "UPDATE membership_periods SET until_id = ? WHERE conversation_id = ? AND until_id IS NULL",
        [tombstone.into(), conversation.into()],
    ))
    .await?;
    db.execute_raw(sql(db, "DELETE FROM conversation_members WHERE conversation_id = ?", [conversation.into()])).await?;
    db.execute_raw(sql(db,
        "UPDATE conversations SET deleted_id = ?, name_key = NULL, name = NULL, topic = NULL WHERE id = ?",
        [tombstone.into(), conversation.into()],
    ))
    .await?;
    Ok(())
}

/// Users by name (case-insensitive), enabled or not: `(id, username, disabled)`.
pub async fn users_named(db: &impl ConnectionTrait, names: &[String]) -> Result<Vec<(UserId, String, bool)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // Ignoring case: SQLite's column is NOCASE, PostgreSQL's unique index is on lower(username).
    let (column, placeholder) = if is_postgres(db) { ("lower(username)", "lower(?)") } else { ("username", "?") };
    let placeholders = vec![placeholder; names.len()].join(", ");
    let rows = db
        .query_all_raw(sql(db,
            &format!("SELECT id, username, disabled FROM users WHERE {column} IN ({placeholders})"),
            names.iter().map(|n| Value::from(n.as_str())),
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "id")?, r.try_get("", "username")?, r.try_get("", "disabled")?)))
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}

/// Columns of one conversation as `viewer` sees it: their marker, unread count, the newest
/// message, the newest activity and the member count.
const VIEW_COLUMNS: &str = "c.id, c.kind, c.name, c.topic, c.visibility, c.archived, c.created_at,
    me.last_read_id AS read_up_to, me.role AS my_role,
    (SELECT COUNT(*) FROM (SELECT 1 FROM messages x WHERE x.conversation_id = c.id AND x.id > COALESCE(me.last_read_id, 0)
        AND x.sender_id != ? AND x.kind = 'text' LIMIT ?) AS capped) AS unread,
    (SELECT MAX(id) FROM messages WHERE conversation_id = c.id AND kind = 'text') AS last_message_id,
    COALESCE((SELECT MAX(id) FROM messages WHERE conversation_id = c.id), 0) AS last_activity,
    (SELECT COUNT(*) FROM conversation_members n WHERE n.conversation_id = c.id) AS member_count";

/// The conversations `user` is a member of, most recent activity first, each with at most
/// `members_each` members listed (owners and admins first).
pub async fn conversations_of(db: &impl ConnectionTrait, user: UserId, members_each: u64) -> Result<Vec<ConversationView>> {
    let rows = db
        .query_all_raw(sql(db,
            &format!(
                "SELECT {VIEW_COLUMNS} FROM conversation_members me JOIN conversations c ON c.id = me.conversation_id
                 WHERE me.user_id = ? AND c.deleted_id IS NULL ORDER BY last_activity DESC, c.id DESC"
            ),
            [user.into(), UNREAD_CAP.into(), user.into()],
        ))
        .await?;
    let ids: Vec<ConversationId> = rows.iter().map(|r| r.try_get("", "id")).collect::<Result<_, DbErr>>()?;
    let mut members = members_of(db, &ids, members_each).await?;
    let mut last = last_messages(db, &rows).await?;
    rows.iter()
        .map(|row| {
            let id: ConversationId = row.try_get("", "id")?;
            view_from_row(row, members.remove(&id).unwrap_or_default(), last.remove(&id))
        })
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}

/// One conversation as `viewer` sees it (a member, or anyone for a public room), with up to
/// `members_limit` members; `None` if it does not exist or was removed.
pub async fn view(db: &impl ConnectionTrait, id: ConversationId, viewer: UserId, members_limit: u64) -> Result<Option<ConversationView>> {
    let Some(row) = db
        .query_one_raw(sql(db,
            &format!(
                "SELECT {VIEW_COLUMNS} FROM conversations c
                 LEFT JOIN conversation_members me ON me.conversation_id = c.id AND me.user_id = ?
                 WHERE c.id = ? AND c.deleted_id IS NULL"
            ),
            [viewer.into(), UNREAD_CAP.into(), viewer.into(), id.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let mut members = members_of(db, &[id], members_limit).await?;
    let mut last = last_messages(db, std::slice::from_ref(&row)).await?;
    Ok(Some(view_from_row(&row, members.remove(&id).unwrap_or_default(), last.remove(&id))?))
}

fn view_from_row(row: &QueryResult, members: Vec<Member>, last_message: Option<crate::domain::Message>) -> Result<ConversationView, DbErr> {
    let my_role: Option<String> = row.try_get("", "my_role")?;
    let read_up_to: Option<MessageId> = row.try_get("", "read_up_to")?;
    Ok(ConversationView {
        id: row.try_get("", "id")?,
        kind: kind_of(row)?,
        name: row.try_get("", "name")?,
        topic: row.try_get("", "topic")?,
        visibility: visibility_of(row)?,
        archived: row.try_get("", "archived")?,
        member_count: row.try_get::<i64>("", "member_count")? as u64,
        members,
        my_role: my_role.as_deref().map(Role::parse).transpose().map_err(|_| DbErr::Custom("unknown role".into()))?,
        unread: if read_up_to.is_some() { row.try_get::<i64>("", "unread")? as u64 } else { 0 },
        read_up_to: read_up_to.unwrap_or_default(),
        last_message,
        last_activity: row.try_get("", "last_activity")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// The newest text message of each row's conversation, in one query.
async fn last_messages(db: &impl ConnectionTrait, rows: &[QueryResult]) -> Result<HashMap<ConversationId, crate::domain::Message>> {
    let ids: Vec<MessageId> = rows
        .iter()
        .map(|r| r.try_get::<Option<MessageId>>("", "last_message_id"))
        .collect::<Result<Vec<_>, DbErr>>()?
        .into_iter()
        .flatten()
        .collect();
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let placeholders = vec!["?"; chunk.len()].join(", ");
        let select = super::messages::MESSAGE_SELECT;
        let rows = db
            .query_all_raw(sql(db, &format!("{select} WHERE m.id IN ({placeholders})"), chunk.iter().map(|id| Value::from(*id))))
            .await?;
        for row in &rows {
            let message = message_from_row(row)?;
            found.insert(message.conversation_id, message);
        }
    }
    Ok(found)
}

/// Up to `limit` members of each conversation: owners, then admins, then members, by name.
async fn members_of(db: &impl ConnectionTrait, ids: &[ConversationId], limit: u64) -> Result<HashMap<ConversationId, Vec<Member>>> {
    let mut members: HashMap<ConversationId, Vec<Member>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let placeholders = vec!["?"; chunk.len()].join(", ");
        let values = chunk.iter().map(|id| Value::from(*id)).chain([Value::from(limit as i64)]);
        let rows = db
            .query_all_raw(sql(db,
                &format!(
                    "SELECT conversation_id, id, username, role, last_read_id FROM (
                        SELECT cm.conversation_id, u.id, u.username, cm.role, cm.last_read_id,
                            ROW_NUMBER() OVER (PARTITION BY cm.conversation_id
                                ORDER BY CASE cm.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.username) AS n
                        FROM conversation_members cm JOIN users u ON u.id = cm.user_id
                        WHERE cm.conversation_id IN ({placeholders})) AS ranked
                     WHERE n <= ? ORDER BY conversation_id, n"
                ),
                values,
            ))
            .await?;
        for row in &rows {
            members.entry(row.try_get("", "conversation_id")?).or_default().push(Member {
                id: row.try_get("", "id")?,
                username: row.try_get("", "username")?,
                role: role_of(row)?,
                read_up_to: row.try_get("", "last_read_id")?,
                online: false,
            });
        }
    }
    Ok(members)
}

/// Public rooms whose name or topic contains `query` (all when empty), best matches first, with
/// whether `viewer` is in each.
pub async fn directory(db: &impl ConnectionTrait, query: &str, viewer: UserId, limit: u64) -> Result<Vec<DirectoryEntry>> {
    let pattern = format!("%{}%", query.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does, on these byte-order columns.
    let like = if is_postgres(db) { "ILIKE" } else { "LIKE" };
    let rows = db
        .query_all_raw(sql(db,
            &format!("SELECT c.id, c.name, c.topic,
                (SELECT COUNT(*) FROM conversation_members n WHERE n.conversation_id = c.id) AS member_count,
                EXISTS (SELECT 1 FROM conversation_members me WHERE me.conversation_id = c.id AND me.user_id = ?) AS joined
             FROM conversations c
             WHERE c.kind = 'room' AND c.visibility = 'public' AND c.deleted_id IS NULL
               AND (c.name {like} ? ESCAPE '\\' OR c.topic {like} ? ESCAPE '\\')
             ORDER BY (c.name_key {like} ? ESCAPE '\\') DESC, member_count DESC, c.name_key
             LIMIT ?"),
            [
                viewer.into(),
                pattern.clone().into(),
                pattern.clone().into(),
                format!("{}%", query.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")).into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DirectoryEntry {
                id: r.try_get("", "id")?,
                name: r.try_get("", "name")?,
                topic: r.try_get("", "topic")?,
                member_count: r.try_get::<i64>("", "member_count")? as u64,
                joined: r.try_get("", "joined")?,
            })
        })
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}

/// Every live room with its member count, by name (for the command line).
pub async fn all_rooms(db: &impl ConnectionTrait) -> Result<Vec<(ConversationId, String, Visibility, bool, u64)>> {
    let rows = db
        .query_all_raw(sql(db,
            "SELECT c.id, c.name, c.visibility, c.archived,
                (SELECT COUNT(*) FROM conversation_members n WHERE n.conversation_id = c.id) AS member_count
             FROM conversations c WHERE c.kind = 'room' AND c.deleted_id IS NULL ORDER BY c.name_key",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "id")?,
                r.try_get("", "name")?,
                visibility_of(r)?.unwrap_or(Visibility::Private),
                r.try_get("", "archived")?,
                r.try_get::<i64>("", "member_count")? as u64,
            ))
        })
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}

/// Whether `user` is a member now.
pub async fn is_member(db: &impl ConnectionTrait, conversation: ConversationId, user: UserId) -> Result<bool> {
    let row = db
        .query_one_raw(sql(db,
            "SELECT 1 AS x FROM conversation_members WHERE conversation_id = ? AND user_id = ?",
            [conversation.into(), user.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// The kind and visibility of a live conversation, for read access checks.
pub async fn kind_and_visibility(db: &impl ConnectionTrait, id: ConversationId) -> Result<Option<(Kind, Option<Visibility>)>> {
    let row = db
        .query_one_raw(sql(db, "SELECT kind, visibility FROM conversations WHERE id = ? AND deleted_id IS NULL", [id.into()]))
        .await?;
    Ok(row.map(|r| Ok::<_, DbErr>((kind_of(&r)?, visibility_of(&r)?))).transpose()?)
}

/// The other members of `conversation`, for typing and read receipts.
pub async fn other_members(db: &impl ConnectionTrait, conversation: ConversationId, me: UserId) -> Result<Vec<UserId>> {
    let rows = db
        .query_all_raw(sql(db,
            "SELECT user_id FROM conversation_members WHERE conversation_id = ? AND user_id != ?",
            [conversation.into(), me.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "user_id").map_err(Error::from)).collect()
}

/// Everyone whose membership covers stream id `at` of `conversation`: who sees that entry, live
/// or through `sync` (a member it removed included, one it added too).
pub async fn audience_at(db: &impl ConnectionTrait, conversation: ConversationId, at: MessageId) -> Result<Vec<(UserId, String)>> {
    let rows = db
        .query_all_raw(sql(db,
            "SELECT DISTINCT u.id, u.username FROM membership_periods p JOIN users u ON u.id = p.user_id
             WHERE p.conversation_id = ? AND p.since_id <= ? AND (p.until_id IS NULL OR p.until_id >= ?)
             ORDER BY u.id",
            [conversation.into(), at.into(), at.into()],
        ))
        .await?;
    rows.iter().map(|r| Ok((r.try_get("", "id")?, r.try_get("", "username")?))).collect::<Result<_, DbErr>>().map_err(Error::from)
}

pub async fn username_of(db: &impl ConnectionTrait, user: UserId) -> Result<String> {
    let row = db.query_one_raw(sql(db, "SELECT username FROM users WHERE id = ?", [user.into()])).await?;
    Ok(row.map(|r| r.try_get("", "username")).transpose()?.unwrap_or_default())
}
