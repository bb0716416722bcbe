//! The chatd schema, one migration per change; `chatd db migrate` and `chatd serve` apply them.
//!
//! Each migration carries its SQLite statements and its PostgreSQL statements side by side;
//! [`run_for_backend`] picks the set for the database at hand. Times and ids are 64-bit integers
//! on both (BIGINT on PostgreSQL, so that every column reads back as an `i64`).
pub use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

mod m20261124_000001_create_users;
mod m20261124_000002_create_sessions;
mod m20261124_000003_create_conversations_and_messages;
mod m20261124_000004_create_revocations;
mod m20261202_000001_presence_and_session_addresses;
mod m20261202_000002_rooms;
mod m20261204_000001_stream_counter;
mod m20261204_000002_revocations_by_time;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261124_000002_create_sessions::Migration),
            Box::new(m20261124_000003_create_conversations_and_messages::Migration),
            Box::new(m20261124_000004_create_revocations::Migration),
            Box::new(m20261202_000001_presence_and_session_addresses::Migration),
            Box::new(m20261202_000002_rooms::Migration),
            Box::new(m20261204_000001_stream_counter::Migration),
            Box::new(m20261204_000002_revocations_by_time::Migration),
        ]
    }
}

/// Runs each statement of a migration in order; SQLite executes one statement per call.
async fn run_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// Runs the statements written for the backend `manager` migrates. sea-orm-migration wraps each
/// PostgreSQL migration in a transaction of its own.
async fn run_for_backend(manager: &SchemaManager<'_>, sqlite: &[&str], postgres: &[&str]) -> Result<(), DbErr> {
    match manager.get_database_backend() {
        DbBackend::Sqlite => run_all(manager, sqlite).await,
        DbBackend::Postgres => run_all(manager, postgres).await,
        other => Err(DbErr::Migration(format!("chatd has no schema for {other:?}"))),
    }
}

/// Whether `manager` migrates a PostgreSQL database.
fn is_postgres(manager: &SchemaManager<'_>) -> bool {
    manager.get_database_backend() == DbBackend::Postgres
}
