//! Groups and rooms: conversations get a name, a topic, a visibility and an archived flag; members
//! get a role; every member's time in a conversation is kept as periods of the change stream, so
//! that `sync` replays exactly what they could see; and messages get a kind, since events (a
//! member added, a rename) are numbered in the same stream as messages.
//!
//! SQLite cannot change a CHECK constraint in place, so `conversations` is rebuilt, with foreign
//! keys off so that dropping the old table does not cascade into members and messages;
//! PostgreSQL alters the table.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000002_rooms"
    }
}

const CONVERSATIONS: &str = "CREATE TABLE conversations_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('direct', 'group', 'room')),
    direct_key TEXT UNIQUE,
    name TEXT,
    name_key TEXT UNIQUE,
    topic TEXT,
    visibility TEXT CHECK (visibility IN ('public', 'private')),
    archived INTEGER NOT NULL DEFAULT 0,
    deleted_id INTEGER,
    created_at INTEGER NOT NULL
)";

const OLD_CONVERSATIONS: &str = "CREATE TABLE conversations_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    direct_key TEXT UNIQUE,
    created_at INTEGER NOT NULL
)";

const POSTGRES_UP: &[&str] = &[
    "ALTER TABLE conversations DROP CONSTRAINT conversations_kind_check",
    "ALTER TABLE conversations ADD CONSTRAINT conversations_kind_check CHECK (kind IN ('direct', 'group', 'room'))",
    r#"ALTER TABLE conversations
        ADD COLUMN name TEXT COLLATE "C",
        ADD COLUMN name_key TEXT COLLATE "C" UNIQUE,
        ADD COLUMN topic TEXT COLLATE "C",
        ADD COLUMN visibility TEXT CHECK (visibility IN ('public', 'private')),
        ADD COLUMN archived BOOLEAN NOT NULL DEFAULT FALSE,
        ADD COLUMN deleted_id BIGINT"#,
    "CREATE INDEX conversations_public_rooms ON conversations(kind, visibility) WHERE deleted_id IS NULL",
    "ALTER TABLE conversation_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'",
    "CREATE TABLE membership_periods (
        conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        since_id BIGINT NOT NULL,
        until_id BIGINT,
        PRIMARY KEY (user_id, conversation_id, since_id)
    )",
    "INSERT INTO membership_periods (conversation_id, user_id, since_id) SELECT conversation_id, user_id, 0 FROM conversation_members",
    "ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text'",
];

const POSTGRES_DOWN: &[&str] = &[
    "DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE kind != 'direct')",
    "DELETE FROM messages WHERE kind != 'text'",
    "ALTER TABLE messages DROP COLUMN kind",
    "DROP TABLE membership_periods",
    "ALTER TABLE conversation_members DROP COLUMN role",
    "DELETE FROM conversations WHERE kind != 'direct'",
    "DROP INDEX conversations_public_rooms",
    "ALTER TABLE conversations DROP COLUMN name, DROP COLUMN name_key, DROP COLUMN topic, DROP COLUMN visibility,
        DROP COLUMN archived, DROP COLUMN deleted_id",
    "ALTER TABLE conversations DROP CONSTRAINT conversations_kind_check",
    "ALTER TABLE conversations ADD CONSTRAINT conversations_kind_check CHECK (kind IN ('direct', 'group'))",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Applied, but not recorded (the process stopped in between): nothing to do.
        if manager.has_column("conversations", "name_key").await? {
            return Ok(());
        }
        if crate::is_postgres(manager) {
            return crate::run_all(manager, POSTGRES_UP).await;
        }
        rebuild(
            manager,
            &[
                CONVERSATIONS,
                "INSERT INTO conversations_new (id, kind, direct_key, created_at) SELECT id, kind, direct_key, created_at FROM conversations",
                "DROP TABLE conversations",
                "ALTER TABLE conversations_new RENAME TO conversations",
                "CREATE INDEX conversations_public_rooms ON conversations(kind, visibility) WHERE deleted_id IS NULL",
                "ALTER TABLE conversation_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'",
                "CREATE TABLE membership_periods (
                    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    since_id INTEGER NOT NULL,
                    until_id INTEGER,
                    PRIMARY KEY (user_id, conversation_id, since_id)
                ) WITHOUT ROWID",
                "INSERT INTO membership_periods (conversation_id, user_id, since_id) SELECT conversation_id, user_id, 0 FROM conversation_members",
                "ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text'",
            ],
        )
        .await
    }

    /// Back to direct conversations only: groups and rooms go, with their messages.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if crate::is_postgres(manager) {
            return crate::run_all(manager, POSTGRES_DOWN).await;
        }
        rebuild(
            manager,
            &[
                "DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE kind != 'direct')",
                "DELETE FROM messages WHERE kind != 'text'",
                "DELETE FROM conversation_members WHERE conversation_id IN (SELECT id FROM conversations WHERE kind != 'direct')",
                "ALTER TABLE messages DROP COLUMN kind",
                "DROP TABLE membership_periods",
                "ALTER TABLE conversation_members DROP COLUMN role",
                OLD_CONVERSATIONS,
                "INSERT INTO conversations_new (id, kind, direct_key, created_at)
                    SELECT id, kind, direct_key, created_at FROM conversations WHERE kind = 'direct'",
                "DROP TABLE conversations",
                "ALTER TABLE conversations_new RENAME TO conversations",
            ],
        )
        .await
    }
}

/// Runs `statements` in one transaction with foreign keys off, then checks that every reference
/// still holds before turning them back on.
async fn rebuild(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared("PRAGMA foreign_keys = OFF").await?;
    let result = async {
        db.execute_unprepared("BEGIN IMMEDIATE").await?;
        for statement in statements {
            if let Err(error) = db.execute_unprepared(statement).await {
                db.execute_unprepared("ROLLBACK").await?;
                return Err(error);
            }
        }
        let broken = db.query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(db.get_database_backend(), "PRAGMA foreign_key_check")).await?;
        if !broken.is_empty() {
            db.execute_unprepared("ROLLBACK").await?;
            return Err(DbErr::Migration(format!("{} rows would lose their references", broken.len())));
        }
        db.execute_unprepared("COMMIT").await.map(|_| ())
    }
    .await;
    db.execute_unprepared("PRAGMA foreign_keys = ON").await?;
    result
}
