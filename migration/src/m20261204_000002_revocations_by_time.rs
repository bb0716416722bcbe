//! Revocations by time: each node's watcher reads the recent ones every second, by when they were
//! logged rather than by id (with several writers a lower id can commit after a higher one).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000002_revocations_by_time"
    }
}

const UP: &[&str] = &["CREATE INDEX revocations_by_time ON revocations (created_at)"];
const DOWN: &[&str] = &["DROP INDEX revocations_by_time"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_for_backend(manager, UP, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_for_backend(manager, DOWN, DOWN).await
    }
}
