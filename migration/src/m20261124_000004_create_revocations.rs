//! A log of revoked sessions. The admin CLI runs as its own process; the server follows this log
//! to close the sockets of revoked sessions, disabled accounts and removed accounts within seconds.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000004_create_revocations"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_all(
            manager,
            // No foreign key: entries must outlive the account they are about.
            &["CREATE TABLE revocations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                user_id INTEGER NOT NULL,
                session_id TEXT,
                created_at INTEGER NOT NULL
            )"],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_all(manager, &["DROP TABLE revocations"]).await
    }
}
