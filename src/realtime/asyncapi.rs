//! The AsyncAPI 3.0 document of `/ws`: every client and server frame as a schema, the handshake,
//! the close codes and the delivery rules. Served at `/api/asyncapi.json` and printed by
//! `chatd asyncapi`; the integration tests check every frame they receive against it.
use std::sync::OnceLock;

const SOURCE: &str = include_str!("asyncapi.json");

/// The document, with the crate's version filled in (and no final newline: `chatd asyncapi`
/// prints one).
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| SOURCE.trim_end().replace("{{CARGO_PKG_VERSION}}", env!("CARGO_PKG_VERSION")))
}
