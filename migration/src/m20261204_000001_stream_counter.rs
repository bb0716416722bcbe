//! The change stream's counter on PostgreSQL: one row whose lock a writer holds from numbering
//! its entries until it commits, so that ids become visible in the order they were given out,
//! whichever node commits. SQLite needs none: its one write lock does the same, and AUTOINCREMENT
//! remembers the last id.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000001_stream_counter"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_for_backend(
            manager,
            &[],
            &[
                "CREATE TABLE stream_counter (id SMALLINT PRIMARY KEY CHECK (id = 1), last_id BIGINT NOT NULL)",
                "INSERT INTO stream_counter (id, last_id) SELECT 1, COALESCE(MAX(id), 0) FROM messages",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_for_backend(manager, &[], &["DROP TABLE stream_counter"]).await
    }
}
