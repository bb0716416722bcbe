//! Logging through `tracing`: human-readable text by default, JSON lines by configuration.
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogConfig;

/// Logs go to standard error so that commands' data on standard output stays clean.
pub fn init(config: &LogConfig) {
    // sea-orm's migrator logs every statement at info; keep it quiet unless asked for.
    let default = format!("{},sea_orm_migration=warn,sqlx=warn", config.level);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if config.format == "json" { builder.json().try_init() } else { builder.try_init() };
}
