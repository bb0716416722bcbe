//! Who has written in each conversation (presence is shown only to people one has written to),
//! and the client address each session was made from (known addresses stay open while an account
//! is being guessed at).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000001_presence_and_session_addresses"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_for_backend(
            manager,
            &[
                "ALTER TABLE conversation_members ADD COLUMN posted INTEGER NOT NULL DEFAULT 0",
                "UPDATE conversation_members SET posted = EXISTS (
                    SELECT 1 FROM messages m
                    WHERE m.sender_id = conversation_members.user_id AND m.conversation_id = conversation_members.conversation_id)",
                "ALTER TABLE sessions ADD COLUMN address TEXT",
            ],
            &[
                "ALTER TABLE conversation_members ADD COLUMN posted BOOLEAN NOT NULL DEFAULT FALSE",
                "UPDATE conversation_members SET posted = EXISTS (
                    SELECT 1 FROM messages m
                    WHERE m.sender_id = conversation_members.user_id AND m.conversation_id = conversation_members.conversation_id)",
                "ALTER TABLE sessions ADD COLUMN address TEXT",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = ["ALTER TABLE sessions DROP COLUMN address", "ALTER TABLE conversation_members DROP COLUMN posted"];
        crate::run_for_backend(manager, &drop, &drop).await
    }
}
