//! Queries about accounts and sign-in sessions.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set, SqlErr,
    sea_query::{Expr, ExprTrait, Func},
};

use super::{entities::user, is_postgres, sql};
use crate::{
    domain::{CurrentUser, UserId, UserSummary, now_millis},
    error::{Error, Result},
};

pub async fn insert_user(
    db: &impl ConnectionTrait,
    username: &str,
    password_hash: String,
    is_admin: bool,
) -> Result<user::Model> {
    let row = user::ActiveModel {
        username: Set(username.to_owned()),
        password_hash: Set(password_hash),
        is_admin: Set(is_admin),
        disabled: Set(false),
        created_at: Set(now_millis()),
        ..Default::default()
    };
    row.insert(db).await.map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::UsernameTaken,
        _ => Error::from(e),
    })
}

/// Case-insensitive: on SQLite the column is `COLLATE NOCASE`; PostgreSQL's unique index is on
/// `lower(username)`.
pub async fn find_by_username(db: &impl ConnectionTrait, username: &str) -> Result<Option<user::Model>> {
    let same_name = if is_postgres(db) {
        Expr::expr(Func::lower(Expr::col(user::Column::Username))).eq(Func::lower(Expr::val(username)))
    } else {
        user::Column::Username.eq(username)
    };
    Ok(user::Entity::find().filter(same_name).one(db).await?)
}

pub async fn list_users(db: &impl ConnectionTrait) -> Result<Vec<user::Model>> {
    Ok(user::Entity::find().order_by_asc(user::Column::Id).all(db).await?)
}

/// Users whose name contains `query`, best matches first (exact, then prefix, then shorter names).
pub async fn search_users(
    db: &impl ConnectionTrait,
    query: &str,
    exclude: UserId,
    limit: u64,
) -> Result<Vec<UserSummary>> {
    let position = if is_postgres(db) { "strpos" } else { "instr" };
    let rows = db
        .query_all_raw(sql(db,
            &format!(
                "SELECT id, username, created_at FROM users
                 WHERE disabled = FALSE AND id != ? AND {position}(username, ?) > 0
                 ORDER BY {position}(username, ?), length(username), username
                 LIMIT ?"
            ),
            [exclude.into(), query.into(), query.into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(UserSummary {
                id: row.try_get("", "id")?,
                username: row.try_get("", "username")?,
                created_at: row.try_get("", "created_at")?,
            })
        })
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}

pub async fn insert_session(db: &impl ConnectionTrait, id: &str, user_id: UserId, expires_at: i64, address: &str) -> Result<()> {
    db.execute_raw(sql(db,
        "INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at, address) VALUES (?, ?, ?, ?, NULL, ?)",
        [id.into(), user_id.into(), now_millis().into(), expires_at.into(), address.into()],
    ))
    .await?;
    Ok(())
}

/// `user`'s live sessions beyond the newest `keep`.
pub async fn sessions_beyond(db: &impl ConnectionTrait, user_id: UserId, keep: u32) -> Result<Vec<String>> {
    // PostgreSQL's sessions have SQLite's implicit rowid as a column of that name.
    let all = if is_postgres(db) { "ALL" } else { "-1" };
    let rows = db
        .query_all_raw(sql(db,
            &format!(
                "SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
                 ORDER BY created_at DESC, rowid DESC LIMIT {all} OFFSET ?"
            ),
            [user_id.into(), now_millis().into(), i64::from(keep).into()],
        ))
        .await?;
    rows.iter().map(|row| row.try_get::<String>("", "id").map_err(Error::from)).collect()
}

/// Addresses `user` made sessions from since `since` (newest first, at most 100).
pub async fn session_addresses(db: &impl ConnectionTrait, user_id: UserId, since: i64) -> Result<Vec<String>> {
    let rows = db
        .query_all_raw(sql(db,
            "SELECT address FROM sessions WHERE user_id = ? AND created_at > ? AND address IS NOT NULL
             GROUP BY address ORDER BY MAX(created_at) DESC LIMIT 100",
            [user_id.into(), since.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get::<String>("", "address").map_err(Error::from)).collect()
}

/// The user behind a live session: not revoked, not expired, account enabled.
pub async fn session_user(db: &impl ConnectionTrait, session_id: &str) -> Result<Option<CurrentUser>> {
    let row = db
        .query_one_raw(sql(db,
            "SELECT u.id, u.username, u.is_admin, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled = FALSE",
            [session_id.into(), now_millis().into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(CurrentUser {
        id: row.try_get("", "id")?,
        username: row.try_get("", "username")?,
        is_admin: row.try_get("", "is_admin")?,
        created_at: row.try_get("", "created_at")?,
        session_id: session_id.to_owned(),
    }))
}

/// Revokes one session and logs it, so a server in another process closes its sockets too.
pub async fn revoke_session(db: &impl ConnectionTrait, user_id: UserId, session_id: &str) -> Result<()> {
    let now = now_millis();
    db.execute_raw(sql(db,
        "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        [now.into(), session_id.into()],
    ))
    .await?;
    log_revocation(db, user_id, Some(session_id), now).await
}

/// Revokes every session of a user (password change, disable, removal).
pub async fn revoke_all_sessions(db: &impl ConnectionTrait, user_id: UserId) -> Result<()> {
    let now = now_millis();
    db.execute_raw(sql(db,
        "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        [now.into(), user_id.into()],
    ))
    .await?;
    log_revocation(db, user_id, None, now).await
}

async fn log_revocation(db: &impl ConnectionTrait, user_id: UserId, session_id: Option<&str>, now: i64) -> Result<()> {
    db.execute_raw(sql(db,
        "INSERT INTO revocations (user_id, session_id, created_at) VALUES (?, ?, ?)",
        [user_id.into(), session_id.map(str::to_owned).into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// A revoked session (or, with no session id, all of a user's sessions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub id: i64,
    pub user_id: UserId,
    pub session_id: Option<String>,
}

/// Revocations logged at or after `since` (Unix ms), oldest first. With several writers a later id
/// can commit first, so a follower reads by time, not past the highest id it saw.
pub async fn revocations_since(db: &impl ConnectionTrait, since: i64) -> Result<Vec<Revocation>> {
    let rows = db
        .query_all_raw(sql(db, "SELECT id, user_id, session_id FROM revocations WHERE created_at >= ? ORDER BY id LIMIT 10000", [since.into()]))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Revocation { id: r.try_get("", "id")?, user_id: r.try_get("", "user_id")?, session_id: r.try_get("", "session_id")? })
        })
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}

pub async fn set_password_hash(db: &impl ConnectionTrait, user_id: UserId, hash: String) -> Result<()> {
    db.execute_raw(sql(db, "UPDATE users SET password_hash = ? WHERE id = ?", [hash.into(), user_id.into()])).await?;
    Ok(())
}

pub async fn set_admin(db: &impl ConnectionTrait, user_id: UserId, is_admin: bool) -> Result<()> {
    db.execute_raw(sql(db, "UPDATE users SET is_admin = ? WHERE id = ?", [is_admin.into(), user_id.into()])).await?;
    Ok(())
}

pub async fn set_disabled(db: &impl ConnectionTrait, user_id: UserId, disabled: bool) -> Result<()> {
    db.execute_raw(sql(db, "UPDATE users SET disabled = ? WHERE id = ?", [disabled.into(), user_id.into()])).await?;
    Ok(())
}

/// Deletes the account with its sessions, memberships and the messages it sent.
pub async fn delete_user(db: &impl ConnectionTrait, user_id: UserId) -> Result<()> {
    db.execute_raw(sql(db, "DELETE FROM users WHERE id = ?", [user_id.into()])).await?;
    Ok(())
}

/// What removing `user_id` deletes with it: (messages it sent, conversations it is in).
pub async fn removal_counts(db: &impl ConnectionTrait, user_id: UserId) -> Result<(u64, u64)> {
    let row = db
        .query_one_raw(sql(db,
            "SELECT (SELECT COUNT(*) FROM messages WHERE sender_id = ?) AS messages,
                    (SELECT COUNT(*) FROM conversation_members WHERE user_id = ?) AS conversations",
            [user_id.into(), user_id.into()],
        ))
        .await?;
    let count = |column: &str| row.as_ref().map_or(Ok(0), |r| r.try_get::<i64>("", column)).map(|n| n as u64);
    Ok((count("messages")?, count("conversations")?))
}

/// Who may see `user`'s presence: the members of their groups and rooms, and the people they have
/// written to in a direct conversation. Someone who was only written to has not chosen to be
/// seen, so a stranger's first message reveals nothing about them.
pub async fn presence_audience(db: &impl ConnectionTrait, user: UserId) -> Result<Vec<UserId>> {
    user_ids(db, &presence_query("me.posted = TRUE"), user).await
}

/// Whose presence `user` may see: the members of their groups and rooms, and the people who have
/// written to them.
pub async fn presence_visible(db: &impl ConnectionTrait, user: UserId) -> Result<Vec<UserId>> {
    user_ids(db, &presence_query("peer.posted = TRUE"), user).await
}

fn presence_query(direct_rule: &str) -> String {
    format!(
        "SELECT DISTINCT peer.user_id FROM conversation_members me
         JOIN conversations c ON c.id = me.conversation_id
         JOIN conversation_members peer ON peer.conversation_id = me.conversation_id AND peer.user_id != me.user_id
         WHERE me.user_id = ? AND (c.kind != 'direct' OR {direct_rule})"
    )
}

async fn user_ids(db: &impl ConnectionTrait, query: &str, user: UserId) -> Result<Vec<UserId>> {
    let rows = db.query_all_raw(sql(db, query, [user.into()])).await?;
    rows.iter().map(|r| r.try_get::<UserId>("", "user_id").map_err(Error::from)).collect()
}
