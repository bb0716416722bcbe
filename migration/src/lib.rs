//! The chatd schema, one migration per change; `chatd db migrate` and `chatd serve` apply them.
pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_users;
mod m20261124_000002_create_sessions;
mod m20261124_000003_create_conversations_and_messages;
mod m20261124_000004_create_revocations;
mod m20261202_000001_presence_and_session_addresses;
mod m20261202_000002_rooms;

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
