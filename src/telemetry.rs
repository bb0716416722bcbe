//! Logging through `tracing`: human-readable text by default, JSON lines by configuration.
use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogConfig;

/// Logs go to standard error so that commands' data on standard output stays clean.
pub fn init(config: &LogConfig) {
    // sea-orm's migrator logs every statement at info; keep it quiet unless asked for.
    let default = format!("{},sea_orm_migration=warn,sqlx=warn", config.level);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour_wanted());
    let _ = if config.format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Colour only for a person at a terminal, and never when `NO_COLOR` is set (no-color.org):
/// escape codes in a log file or a journal are noise.
fn colour_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}
