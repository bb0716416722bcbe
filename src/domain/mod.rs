//! The chat domain: accounts, sessions, conversations, messages and presence rules.
//! Nothing here knows about HTTP or WebSocket frames; adapters call into these services.
pub mod accounts;
pub mod chat;
pub mod conversations;
pub mod delivery;
pub mod fanout;
pub mod ids;
pub mod pipeline;
pub mod rate_limits;
pub mod rules;
pub mod types;
pub mod writes;

pub use types::*;

/// Milliseconds since the Unix epoch: how chatd stores every timestamp.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 in UTC with millisecond precision, the form every API response uses.
pub fn format_time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
