//! Sign-in sessions: every token names one, so signing out revokes exactly that token.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000002_create_sessions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_for_backend(
            manager,
            &[
                "CREATE TABLE sessions (
                    id TEXT PRIMARY KEY NOT NULL,
                    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    revoked_at INTEGER
                )",
                "CREATE INDEX sessions_by_user ON sessions(user_id)",
            ],
            // `rowid` is SQLite's implicit one made explicit: it orders sessions made in the
            // same millisecond.
            &[
                "CREATE TABLE sessions (
                    id TEXT PRIMARY KEY NOT NULL,
                    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    revoked_at BIGINT,
                    rowid BIGINT GENERATED ALWAYS AS IDENTITY
                )",
                "CREATE INDEX sessions_by_user ON sessions(user_id)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = ["DROP TABLE sessions"];
        crate::run_for_backend(manager, &drop, &drop).await
    }
}
