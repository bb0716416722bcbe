//! Conversations with members, and their messages. A direct conversation has two members and a
//! `direct_key` ("<lower id>:<higher id>") that makes it unique; groups would leave it NULL.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000003_create_conversations_and_messages"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_all(
            manager,
            &[
                "CREATE TABLE conversations (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
                    direct_key TEXT UNIQUE,
                    created_at INTEGER NOT NULL
                )",
                "CREATE TABLE conversation_members (
                    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    last_read_id INTEGER NOT NULL DEFAULT 0,
                    joined_at INTEGER NOT NULL,
                    PRIMARY KEY (conversation_id, user_id)
                ) WITHOUT ROWID",
                "CREATE INDEX conversation_members_by_user ON conversation_members(user_id, conversation_id)",
                // AUTOINCREMENT: ids are never reused, so a client's `after` cursor stays meaningful.
                "CREATE TABLE messages (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    sender_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    client_id TEXT NOT NULL,
                    body TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    UNIQUE (sender_id, client_id)
                )",
                "CREATE INDEX messages_by_conversation ON messages(conversation_id, id)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_all(
            manager,
            &[
                "DROP TABLE messages",
                "DROP TABLE conversation_members",
                "DROP TABLE conversations",
            ],
        )
        .await
    }
}
